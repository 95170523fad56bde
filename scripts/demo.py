"""Demo: test hypotheses about the bundled induction model and print a verdict table.

    python scripts/demo.py [--n 1000] [--seeds 2]

The model (scrub/bundled/checkpoints/induction.pt) was trained by
scripts/train_induction.py; the hypotheses are in hypotheses/bundled/induction.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from scrub.bundled import induction
from scrub.report import format_table
from hypotheses.bundled import induction as hyps
from metrics import NextTokenLoss, VerdictRule, evaluate


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

    rows, random_loss = [], None
    start = time.time()
    for make in hyps.ALL:
        ev = evaluate(model, make(), data, loss, seeds=seeds, random_loss=random_loss)
        random_loss = ev.random_loss  # one random baseline for all hypotheses
        s = ev.summary()
        rows.append([s["hypothesis"], f"{s['loss_recovered']:.1%}", s["kl"], rule.judge(s)])
    print(format_table(rows, ["hypothesis", "loss recovered", "KL(model||scrub)", "verdict"]))
    print(f"\nmodel loss {s['model_loss']:.3f}, random baseline {s['random_loss']:.3f} nats; "
          f"rule: survive if loss recovered >= {rule.min_loss_recovered:.0%} and KL <= {rule.max_distance}. "
          f"({time.time() - start:.0f}s)")


if __name__ == "__main__":
    main()
