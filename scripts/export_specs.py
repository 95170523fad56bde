"""Write every case study's hypotheses as spec files under hypotheses/cases/<case>/specs/.

    python scripts/export_specs.py [--check]

The Python builders (hypotheses/cases/<case>/hypotheses.py) are the source; the YAML files are
generated from them so both stay the same (`--check` fails if a committed file
differs, which tests/test_specs.py also asserts).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

from scrub.app.spec import spec_dict, to_yaml
from hypotheses.cases.induction import hypotheses as induction
from hypotheses.cases.paren import hypotheses as paren
from hypotheses.cases.planted import hypotheses as planted

REPO = pathlib.Path(__file__).resolve().parent.parent
CASES = REPO / "hypotheses" / "cases"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def studies() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    ind = dict(model={"bundled": "induction"}, data={"bundled": "induction", "args": {"n": 2000, "seed": 12345}},
               loss={"next_token": {"mask": "induction_mask"}}, seeds=[0, 1])
    out["induction/specs"] = [spec_dict(mk(), **ind) for mk in induction.ALL]
    for folder, model in (("paren/specs/external", "paren-external"), ("paren/specs/ours", "paren")):
        # the original protocol: the whole Redwood set is the pool, 4000 reference data per seed
        common = dict(model={"bundled": model}, data={"bundled": "paren-redwood"}, reference=4000,
                      loss={"classification": {"position": 0}}, seeds=[0, 1, 2, 3, 4],
                      metrics=[{"accuracy": {"position": 0}}])
        out[folder] = [spec_dict(mk(), **common) for mk in paren.ALL]
    specs = []
    for key, (cases, loss, label) in planted.cancellation_cases().items():
        for h, want, sets in cases():
            named = h if label is None else h.renamed(f"{h.name} ({label})")
            truth = f"ground truth: {want}" + "".join(f"; cancel-out set {' + '.join(sorted(s))}" for s in sets)
            specs.append(spec_dict(named, model={"bundled": f"planted-{key}"}, data={"bundled": f"planted-{key}"},
                                   loss=loss.to_spec(), seeds=[0, 1], description=truth))
    for act, name in ((True, "xor-relu"), (False, "xor-linear")):
        for h, which, want in planted.xor_and_linear(act):
            loss = {"mse": {"dims": [0 if which == "xor" else 1]}}
            specs.append(spec_dict(h.renamed(f"{h.name} ({name})"), model={"bundled": f"planted-{name}"},
                                   data={"bundled": f"planted-{name}"}, loss=loss, seeds=[0, 1],
                                   description=f"ground truth: {want}"))
    specs += [spec_dict(h, model={"bundled": "planted-sine"}, data={"bundled": "planted-sine"}, loss="mse",
                        seeds=[0, 1], description=f"ground truth: {want}") for h, want in planted.sine()]
    out["planted/specs"] = specs
    return out


def files() -> dict[pathlib.Path, str]:
    return {CASES / folder / f"{slug(doc['name'])}.yaml": to_yaml(doc)
            for folder, docs in studies().items() for doc in docs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed spec differs from its builder")
    args = parser.parse_args()
    stale = []
    for path, text in files().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    if stale:
        sys.exit("stale spec files (run python scripts/export_specs.py): " + ", ".join(map(str, stale)))


if __name__ == "__main__":
    main()
