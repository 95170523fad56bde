"""Demo: test hypotheses about the bundled induction model and print a verdict table.

    python scripts/demo.py [--n 1000] [--seeds 2]

The model (hypotheses/cases/induction/induction.pt) was trained by
scripts/train_induction.py; the hypotheses are in hypotheses/cases/induction/hypotheses.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from hypotheses.cases import induction
from scrub.app.report import format_table
from hypotheses.cases.induction import hypotheses as hyps
from metrics import NextTokenLoss, VerdictRule, evaluate_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="reference data (fresh sequences)")
    parser.add_argument("--seeds", type=int, default=2, help="resampling seeds")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    model = induction.load_model()
    data = induction.make_dataset(args.n, seed=12345)  # not the training stream
    loss = NextTokenLoss("induction_mask")  # next-token loss where the token is copyable
    seeds = tuple(range(args.seeds))
    rule = VerdictRule()
    print(f"model: bundled induction model, heads {induction.heads()}")
    print(f"data: {args.n} fresh sequences, loss at induction positions, seeds {list(seeds)}\n")

    start = time.time()
    evaluations = evaluate_many(model, [make() for make in hyps.ALL], data, loss, seeds=seeds)  # one batched run
    rows = []
    for ev in evaluations:
        verdict = rule.judge(ev)
        rows.append([ev.name, ev.estimate("loss_recovered").percent(), str(ev.estimate("kl")), str(verdict)])
    s = evaluations[0].summary()
    print(format_table(rows, ["hypothesis", "loss recovered [95% CI]", "KL(model||scrub) [95% CI]", "verdict"]))
    print(f"\nmodel loss {s['model_loss']:.3f}, random baseline {s['random_loss']:.3f} nats "
          f"(random baseline KL {s['random_kl']:.3f}); rule: {rule.describe()}. ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
