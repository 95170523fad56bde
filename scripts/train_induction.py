"""Train the bundled 2-layer attention-only induction model and label its heads.

    python scripts/train_induction.py [--out PATH] [--steps N] [--seed S]

Why heads are found, not assumed: which head becomes the previous-token head
depends on the seed, so after training we score every head on fresh data and
store the roles (and scores) in the checkpoint for hypotheses to read.
Exits non-zero if no previous-token or induction head clears its threshold.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scrub import ScrubTransformer, TransformerConfig, save_checkpoint
from hypotheses.cases.induction.model import CHECKPOINT, D_VOCAB, SEQ_LEN, make_sequences

PREV_THRESHOLD = 0.5  # mean attention to t-1; a uniform head gets about 1/16 here
INDUCTION_THRESHOLD = 0.5  # mean attention to the induction source
EVAL_SEED = 10**9  # fresh data: training seeds are seed * 10**6 + step
BATCH = 128


def build_model(seed: int) -> ScrubTransformer:
    cfg = TransformerConfig(n_layers=2, d_model=64, n_heads=4, d_head=16, d_vocab=D_VOCAB, n_ctx=SEQ_LEN,
                            d_mlp=None, normalization="LN", attention_dir="causal", seed=seed)
    return ScrubTransformer(cfg)


def token_losses(model: ScrubTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Per-position next-token CE `(n, seq_len - 1)`: entry t predicts token t+1 from position t."""
    logits = model(tokens)[:, :-1]
    return F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")


def train(model: ScrubTransformer, steps: int, seed: int, lr: float = 3e-3) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    history = []
    for step in range(steps):
        tokens = make_sequences(BATCH, seed=seed * 10**6 + step).tokens
        loss = token_losses(model, tokens).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {sum(history[-100:]) / len(history[-100:]):.3f}", flush=True)
    return history


@torch.no_grad()
def evaluate(model: ScrubTransformer, n: int = 2000) -> dict:
    """Losses by position kind and per-head scores on fresh data."""
    model.eval()
    seqs = make_sequences(n, seed=EVAL_SEED)
    _, cache = model.run_with_cache(seqs.tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    losses = token_losses(model, seqs.tokens)
    ind = seqs.induction_mask[:, :-1]
    p0, p1 = cache["blocks.0.attn.hook_pattern"], cache["blocks.1.attn.hook_pattern"]  # (b, h, q, k)
    prev = p0.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))  # pattern[b, h, t, t-1] over t >= 1
    b, t = seqs.induction_mask.nonzero(as_tuple=True)
    induction = p1[b, :, t, seqs.induction_source[b, t]].mean(0)  # (head,)
    return {
        "loss": losses.mean().item(),
        "loss_induction": losses[ind].mean().item(),
        "loss_other": losses[~ind].mean().item(),
        "uniform_loss": math.log(model.cfg.d_vocab),
        "previous_token": {f"head.0.{h}": round(s, 4) for h, s in enumerate(prev.tolist())},
        "induction": {f"head.1.{h}": round(s, 4) for h, s in enumerate(induction.tolist())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # tiny model: one thread is as fast, and float sums stay reproducible
    torch.manual_seed(args.seed)
    model = build_model(args.seed)
    start = time.time()
    history = train(model, args.steps, args.seed)
    seconds = time.time() - start
    ev = evaluate(model)
    roles = {"previous_token": [h for h, s in ev["previous_token"].items() if s >= PREV_THRESHOLD],
             "induction": [h for h, s in ev["induction"].items() if s >= INDUCTION_THRESHOLD]}

    print(f"\ntrained {args.steps} steps in {seconds:.0f}s (seed {args.seed})")
    print(f"loss: overall {ev['loss']:.3f}  induction positions {ev['loss_induction']:.3f}  "
          f"other positions {ev['loss_other']:.3f}  (uniform guess {ev['uniform_loss']:.3f})")
    print(f"previous-token scores (threshold {PREV_THRESHOLD}): {ev['previous_token']}")
    print(f"induction scores (threshold {INDUCTION_THRESHOLD}): {ev['induction']}")
    print(f"roles: {roles}")
    missing = [role for role, found in roles.items() if not found]
    if missing:
        print(f"error: training produced no {' or '.join(missing)} head above threshold; "
              "try more --steps or another --seed. No checkpoint written.", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    scores = {"previous_token": ev["previous_token"], "induction": ev["induction"]}
    train_info = {"steps": args.steps, "seed": args.seed, "batch": BATCH, "seconds": round(seconds, 1),
                  "final_train_loss": round(sum(history[-100:]) / len(history[-100:]), 4),
                  "eval_loss": round(ev["loss"], 4), "eval_loss_induction": round(ev["loss_induction"], 4),
                  "eval_loss_other": round(ev["loss_other"], 4),
                  "thresholds": {"previous_token": PREV_THRESHOLD, "induction": INDUCTION_THRESHOLD},
                  "data": {"d_vocab": D_VOCAB, "seq_len": SEQ_LEN, "generator": "hypotheses.cases.induction.model"}}
    save_checkpoint(model, args.out, roles=roles, scores=scores, train_info=train_info)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
