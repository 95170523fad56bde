"""Reproduce the published table of the original causal scrubbing paren experiments (0a-4).

    python scripts/reproduce_redwood_paren.py                 # external model, both data sets, 4000 x 5 seeds
    python scripts/reproduce_redwood_paren.py --model ours    # our own trained model, same hypotheses
    python scripts/reproduce_redwood_paren.py --n 1000 --seeds 1 --data redwood --experiments 1a 1b --no-write
    python scripts/reproduce_redwood_paren.py --direct-paths  # where each model writes the class (both models)
    python scripts/reproduce_redwood_paren.py --float32-ties  # 3b and 4 with the original's float32 ties
    python scripts/reproduce_redwood_paren.py --facts         # the data facts the page quotes

Protocol, as in the original: the sampling pool is the whole data set (100,000
strings); each seed draws its own 4000 reference data with replacement from
it, and every conditional draw comes from the whole pool. The number is the
mean 2-class cross-entropy at position 0 (the BCE of the balanced-minus-
unbalanced logit difference). Prints the table; for the external model
updates docs/case-studies/redwood-paren.json
(`{experiment: {data set: {mean, std, seeds}}}`, std over seeds; the data
sets run replace theirs, others are kept) and writes the table of every data
set in it into docs/case-studies/paren.md (block `reproduced`); for ours,
that page's `ours` block. `--direct-paths` scores, on both models, claims of
a few sites' direct paths to position 0 (block `direct-paths`);
`--float32-ties` scores 3b and 4 with the adjusted proportion's exact ties
rounded as the original's float32 code rounds them (block `ties`); `--facts`
counts what the page quotes about the Redwood set (block `facts`). Needs the
shared paren-balancer folder (`$SCRUB_PAREN_DIR`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import torch

from doc_blocks import put_block
from hypotheses.cases import paren
from hypotheses.cases.paren.hypotheses import EXPERIMENTS, FLOAT32_TIES, PROBES, PUBLISHED
from metrics import ClassificationLoss, evaluate_many
from scrub.app.report import markdown_table

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "case-studies"
DATA_NAMES = {"redwood": "Redwood set", "curriculum": "curriculum set"}


def run(model, which: str, names: list[str], n: int, seeds: list[int], builders=EXPERIMENTS) -> dict:
    """{experiment: {"mean", "std", "seeds"}} for one data set (std: over seeds, each with its own reference
    data, so it is a single run's standard error)."""
    data = paren.load_external_data(which)
    hypotheses = [builders[k]() for k in names]
    per_seed: dict[str, list] = {k: [] for k in names}
    for seed in seeds:
        start = time.time()
        evaluations = evaluate_many(model, hypotheses, data, ClassificationLoss(0), seeds=[seed], reference=n,
                                    reference_seed=seed, distances=[])
        for k, ev in zip(names, evaluations):
            per_seed[k].append(ev.scrub_loss[0].double().mean().item())
        print(f"  {which}, seed {seed}: {time.time() - start:.0f}s", flush=True)
    return {k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "seeds": v}
            for k, v in per_seed.items()}


def table(results: dict, n: int, seeds: list[int]) -> str:
    """results: {data set: {experiment: {mean, std, seeds}}}."""
    sets = [w for w in DATA_NAMES if w in results]
    names = [k for k in EXPERIMENTS if any(k in results[w] for w in sets)]
    header = ["experiment", "published (± 4 SE)"] + [f"{DATA_NAMES[w]}: mean (sd over seeds)" for w in sets]
    rows = []
    for k in names:
        target, se = PUBLISHED[k]
        row = [EXPERIMENTS[k]().name, f"{target:.3g} (± {4 * se:.2g})"]
        row += [f"{results[w][k]['mean']:.3f} ({results[w][k]['std']:.3f})" if k in results[w] else "-" for w in sets]
        rows.append(row)
    note = (f"_{n} reference data per seed, seeds {seeds}, each seed drawing its own reference data with "
            "replacement from the whole data set (100,000 strings, also the pool of every conditional draw); "
            "mean 2-class cross-entropy at position 0._")
    return note + "\n\n" + markdown_table(rows, header)


def direct_paths_table(n: int, seeds: list[int]) -> str:
    models = {"external": paren.load_external_model(), "ours": paren.load_model()}
    builders = {"everything (0a)": EXPERIMENTS["0a"], **PROBES, "nothing (0b)": EXPERIMENTS["0b"]}
    results = {m: run(model, "redwood", list(builders), n, seeds, builders) for m, model in models.items()}
    rows = [[k] + [f"{results[m][k]['mean']:.3f} ({results[m][k]['std']:.3f})" for m in models] for k in builders]
    note = (f"_Loss when only these sites' direct paths to position 0 are kept exact and everything else is "
            f"resampled (one datum); the Redwood set, {n} reference data per seed, seeds {seeds}; mean (sd over "
            "seeds)._")
    return note + "\n\n" + markdown_table(rows, ["direct paths kept", "external model", "our model"])


def float32_ties_table(data_sets: list[str], n: int, seeds: list[int]) -> str:
    model = paren.load_external_model()
    results = {w: run(model, w, list(FLOAT32_TIES), n, seeds, FLOAT32_TIES) for w in data_sets}
    rows = [[FLOAT32_TIES[k]().name, f"{PUBLISHED[k][0]:.3g}"] +
            [f"{results[w][k]['mean']:.3f} ({results[w][k]['std']:.3f})" for w in data_sets] for k in FLOAT32_TIES]
    note = (f"_External model, {n} reference data per seed, seeds {seeds}; mean (sd over seeds)._")
    return note + "\n\n" + markdown_table(rows, ["experiment", "published"] +
                                           [f"{DATA_NAMES[w]}: mean (sd)" for w in data_sets])


def facts_text() -> str:
    """Facts about the Redwood set and the external model that the page's explanations rest on."""
    from hypotheses.cases.paren import features as F

    data, model = paren.load_external_data("redwood"), paren.load_external_model()
    ld = paren.classify(model, data.inputs).double()
    ld = ld[:, 1] - ld[:, 0]  # balanced minus unbalanced
    balanced = data.labels.double()
    share = balanced.mean()
    softplus = torch.nn.functional.softplus
    random_expectation = (share * softplus(-ld) + (1 - share) * softplus(ld)).mean().item()
    ties = F.adjusted_ties(data)
    left_to_right = torch.tensor([paren.elevation_never_negative(s) for s in data.raw]).numpy()
    failing = (data.labels.numpy() == 1) & ~F.float32_horizon_test(data)
    lines = [
        f"the random baseline's expectation over every pair of datum and label: {random_expectation:.3f}",
        f"strings on which the right-to-left horizon test and the left-to-right one differ: "
        f"{(F.horizon_test(data) != left_to_right).mean():.1%}",
        f"cells where the adjusted proportion is exactly 1/2: {int(ties.sum()):,} in {int(ties.any(1).sum()):,} "
        f"strings ({int(F.count_test(data).sum()):,} strings have equal counts)",
        f"balanced strings that fail the adjusted horizon test with float32 ties: {int(failing.sum()):,} "
        f"(with exact ties: {int(((data.labels.numpy() == 1) & ~F.adjusted_horizon_test(data)).sum()):,})",
    ]
    return "_The Redwood set (100,000 strings) and the external model:_\n\n" + "\n".join(f"- {x}" for x in lines)


def update_record(path: pathlib.Path, results: dict) -> dict:
    """The JSON record with these data sets' results put in (other data sets' kept); as {data set: ...}."""
    record = json.loads(path.read_text()) if path.exists() else {}
    for which, by_experiment in results.items():
        for k, r in by_experiment.items():
            record.setdefault(k, {})[which] = r
    record = {k: record[k] for k in EXPERIMENTS if k in record}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return {w: {k: record[k][w] for k in record if w in record[k]} for w in DATA_NAMES
            if any(w in by_set for by_set in record.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["external", "ours"], default="external")
    parser.add_argument("--data", nargs="+", choices=list(DATA_NAMES), default=list(DATA_NAMES))
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument("--n", type=int, default=4000, help="reference data per seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the JSON and the page alone")
    parser.add_argument("--direct-paths", action="store_true", help="only the direct-path probes, both models")
    parser.add_argument("--float32-ties", action="store_true", help="only 3b and 4 with float32 ties")
    parser.add_argument("--facts", action="store_true", help="only the data facts the page quotes")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    torch.set_grad_enabled(False)
    if not paren.external_available():
        raise SystemExit(f"the shared paren-balancer folder is not at {paren.shared_dir()}; set {paren.ENV_VAR}.")
    for flag, block, make in (("facts", "facts", facts_text),
                              ("direct_paths", "direct-paths", lambda: direct_paths_table(args.n, seeds)),
                              ("float32_ties", "ties", lambda: float32_ties_table(args.data, args.n, seeds))):
        if getattr(args, flag):
            text = make()
            print(text)
            if not args.no_write:
                put_block(DOCS / "paren.md", block, text)
            return
    model = paren.load_external_model() if args.model == "external" else paren.load_model()
    start = time.time()
    results = {which: run(model, which, args.experiments, args.n, seeds) for which in args.data}
    print(table(results, args.n, seeds))
    print(f"total {time.time() - start:.0f}s")
    if args.no_write:
        return
    if args.model == "external":
        everything = update_record(DOCS / "redwood-paren.json", results)
        put_block(DOCS / "paren.md", "reproduced", table(everything, args.n, seeds))
    else:
        put_block(DOCS / "paren.md", "ours", table(results, args.n, seeds))


if __name__ == "__main__":
    main()
