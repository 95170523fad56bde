"""Train the project's own paren-balancer (hypotheses/cases/paren/paren.pt).

Why our own: the toolkit's tests and examples need a paren model that ships
with the package; the external one lives only in a shared folder. Same shape
as the external model, trained from scratch on `make_dataset` data, on CPU.

Speed: each chunk of fresh data is sorted by length and cut into batches of
near-equal length, and each batch is trimmed of its all-pad tail (exact for
position-0 logits, since pad keys are masked), which roughly halves the cost.

    python scripts/train_paren.py [--steps N] [--seed S] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hypotheses.cases import paren
from scrub.models.transformer import ScrubTransformer, save_checkpoint

MIN_FRESH_ACCURACY = 0.95


def batches(seed: int, batch_size: int, chunk: int = 64):
    """Endless (tokens, labels) batches of fresh data, each of near-equal length."""
    for c in range(10**9):
        data = paren.make_dataset(batch_size * chunk, seed=seed * 1_000_003 + c)
        order = (data.inputs != paren.PAD).sum(1).argsort()
        groups = order.view(chunk, batch_size)
        for g in groups[torch.randperm(chunk, generator=torch.Generator().manual_seed(seed + c))]:
            yield paren.trim(data.inputs[g]), data.labels[g]


def train(steps: int, seed: int, batch_size: int, lr: float, log_every: int) -> tuple[ScrubTransformer, dict]:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(paren.CONFIG, seed=seed, init_range=0.1)
    model = ScrubTransformer(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 50)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    start, seen, running = time.time(), 0, None
    for step, (tokens, labels) in zip(range(steps), batches(seed, batch_size)):
        loss = F.cross_entropy(model(tokens)[:, 0], labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        seen += len(tokens)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            print(f"step {step + 1}/{steps}  loss {running:.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                  f"{time.time() - start:.0f}s", flush=True)
    info = {"steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr, "examples": seen,
            "train_seconds": round(time.time() - start, 1), "final_loss": round(running, 5),
            "data": "hypotheses.cases.paren.model.make_dataset", "mix": dict(paren.MIX)}
    return model.eval(), info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=paren.CHECKPOINT)
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-n", type=int, default=20000, help="rows per evaluation set")
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads; 1 is fastest for this tiny model and safe on a shared machine")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    model, info = train(args.steps, args.seed, args.batch_size, args.lr, args.log_every)
    fresh = paren.accuracy(model, paren.make_dataset(args.eval_n, seed=10**9 + args.seed))
    info["accuracy_fresh"] = round(fresh, 5)
    print(f"accuracy on {args.eval_n} fresh generated strings: {fresh:.5f}")
    if paren.external_available():
        g = torch.Generator().manual_seed(args.seed)
        for which in paren.DATA_FILES:
            data = paren.load_external_data(which)
            data = data.take(torch.randperm(len(data), generator=g)[:args.eval_n])
            acc = paren.accuracy(model, data)
            info[f"accuracy_{which}"] = round(acc, 5)
            print(f"accuracy on {len(data)} rows of the external {which} set: {acc:.5f}")
    else:
        print(f"external data not found at {paren.shared_dir()}; skipped its accuracies")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out, train_info=info)
    print(f"saved {args.out} ({args.out.stat().st_size:,} bytes); total {time.time() - t0:.0f}s")
    if fresh < MIN_FRESH_ACCURACY:
        print(f"error: accuracy on fresh data {fresh:.4f} < {MIN_FRESH_ACCURACY}; train longer (--steps) "
              "or try another --seed.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
