"""Reproduce the published table of the original causal scrubbing paren experiments (0a-4).

    python scripts/reproduce_redwood_paren.py                 # external model, both data sets, 4000 x 5 seeds
    python scripts/reproduce_redwood_paren.py --model ours    # our own trained model, same hypotheses
    python scripts/reproduce_redwood_paren.py --n 1000 --seeds 1 --data redwood --experiments 1a 1b --no-write

Protocol, as in the original: the sampling pool is the whole data set (100,000
strings); each seed draws its own 4000 reference data with replacement from
it, and every conditional draw comes from the whole pool. The number is the
mean 2-class cross-entropy at position 0 (the BCE of the balanced-minus-
unbalanced logit difference). Prints the table; for the external model writes
docs/case-studies/redwood-paren.json
(`{experiment: {data set: {mean, std, seeds}}}`, std over seeds) and the
table block of docs/case-studies/paren.md; for ours, that page's `ours` block.
Needs the shared paren-balancer folder (`$SCRUB_PAREN_DIR`).
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
from hypotheses.cases.paren.hypotheses import EXPERIMENTS, PUBLISHED
from metrics import ClassificationLoss, evaluate_many
from scrub.app.report import markdown_table

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "case-studies"
DATA_NAMES = {"redwood": "Redwood set", "curriculum": "curriculum set"}


def run(model, which: str, names: list[str], n: int, seeds: list[int]) -> dict:
    """{experiment: {"mean", "std", "seeds", "se"}} for one data set (se: the mean single-run standard error)."""
    data = paren.load_external_data(which)
    hypotheses = [EXPERIMENTS[k]() for k in names]
    per_seed: dict[str, list] = {k: [] for k in names}
    for seed in seeds:
        start = time.time()
        evaluations = evaluate_many(model, hypotheses, data, ClassificationLoss(0), seeds=[seed], reference=n,
                                    reference_seed=seed, distances=[])
        for k, ev in zip(names, evaluations):
            loss = ev.scrub_loss[0].double()
            per_seed[k].append((loss.mean().item(), (loss.std() / len(loss) ** 0.5).item()))
        print(f"  {which}, seed {seed}: {time.time() - start:.0f}s", flush=True)
    out = {}
    for k, vals in per_seed.items():
        means = [m for m, _ in vals]
        out[k] = {"mean": statistics.fmean(means), "std": statistics.stdev(means) if len(means) > 1 else 0.0,
                  "seeds": means, "se": statistics.fmean(s for _, s in vals)}
    return out


def table(results: dict, names: list[str], n: int, seeds: list[int]) -> str:
    sets = list(results)
    header = ["experiment", "published (4 SE)"] + [f"{DATA_NAMES[w]}: mean (sd over seeds; one run's SE)"
                                                   for w in sets]
    rows = []
    for k in names:
        target, se = PUBLISHED[k]
        row = [EXPERIMENTS[k]().name, f"{target:.3g} (±{4 * se:.2g})"]
        for w in sets:
            r = results[w][k]
            row.append(f"{r['mean']:.3f} ({r['std']:.3f}; {r['se']:.3f})")
        rows.append(row)
    note = (f"_{n} reference data per seed, seeds {seeds}, drawn with replacement from the whole data set "
            "(100,000 strings, also the pool of every conditional draw); mean 2-class cross-entropy at position 0._")
    return note + "\n\n" + markdown_table(rows, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["external", "ours"], default="external")
    parser.add_argument("--data", nargs="+", choices=list(DATA_NAMES), default=list(DATA_NAMES))
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument("--n", type=int, default=4000, help="reference data per seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the JSON and the page alone")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if not paren.external_available():
        raise SystemExit(f"the shared paren-balancer folder is not at {paren.shared_dir()}; set {paren.ENV_VAR}.")
    model = paren.load_external_model() if args.model == "external" else paren.load_model()
    seeds = list(range(args.seeds))
    start = time.time()
    results = {which: run(model, which, args.experiments, args.n, seeds) for which in args.data}
    text = table(results, args.experiments, args.n, seeds)
    print(text)
    print(f"total {time.time() - start:.0f}s")
    if args.no_write:
        return
    if args.model == "external":
        record = {k: {w: {f: results[w][k][f] for f in ("mean", "std", "seeds")} for w in args.data}
                  for k in args.experiments}
        path = DOCS / "redwood-paren.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {path}")
        put_block(DOCS / "paren.md", "reproduced", text)
    else:
        put_block(DOCS / "paren.md", "ours", text)


if __name__ == "__main__":
    main()
