"""Evaluate a hypothesis: scrub it, run the baselines, collect per-datum values.

    ev = evaluate(model, hypothesis, data, NextTokenLoss(), seeds=(0, 1))
    ev.summary()   # expected loss, baselines, loss recovered, distances

Everything is kept per (seed, reference datum) so that statistics (means,
confidence intervals, datum-level checks) are computed later from the same
numbers. The random baseline is the hypothesis whose only node is a root with
the unconditional sampler, run on the same reference data and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor

import scrub
from scrub.data import Dataset
from scrub.engine.run import run_compiled

from hypotheses.nodes import Hypothesis, Node
from hypotheses.samplers import Unconditional

from metrics.distances import DISTANCES
from metrics.losses import MSELoss


def random_baseline() -> Hypothesis:
    """The hypothesis 'nothing matters': a root that draws its datum unconditionally."""
    return Hypothesis(Node("root", sampler=Unconditional()), name="random baseline")


def model_baseline() -> Hypothesis:
    """The hypothesis 'everything matters': the root alone, exact. Equals the model."""
    return Hypothesis(Node("root"), name="model")


def default_distances(loss) -> tuple[str, ...]:
    return ("l2_logits",) if isinstance(loss, MSELoss) else ("kl", "kl_reverse", "l2_logits", "l2_probs")


@dataclass
class Evaluation:
    """Per-(seed, datum) values of one hypothesis. Tensors are `(n_seeds, N)` on the CPU."""

    hypothesis: Hypothesis
    loss_name: str
    seeds: tuple[int, ...]
    scrub_loss: Tensor
    model_loss: Tensor
    random_loss: Tensor
    distances: dict[str, Tensor] = field(default_factory=dict)
    results: list = field(default_factory=list)  # ScrubResult per seed (audit trail, outputs dropped)

    @property
    def name(self) -> str:
        return self.hypothesis.name

    def loss_recovered(self) -> float:
        return loss_recovered(self.random_loss.mean().item(), self.scrub_loss.mean().item(),
                              self.model_loss.mean().item())

    def summary(self) -> dict:
        out = {"hypothesis": self.name, "loss": self.loss_name, "n_reference": self.scrub_loss.shape[1],
               "n_seeds": len(self.seeds), "expected_loss": self.scrub_loss.mean().item(),
               "model_loss": self.model_loss.mean().item(), "random_loss": self.random_loss.mean().item(),
               "loss_recovered": self.loss_recovered()}
        out.update({name: v.mean().item() for name, v in self.distances.items()})
        return out


def loss_recovered(random_loss: float, scrub_loss: float, model_loss: float) -> float:
    """(L_random - L_scrub) / (L_random - L_model), reported as it is (never clipped).

    NaN when the baselines coincide: then no loss is there to recover, and any
    number would mislead."""
    gap = random_loss - model_loss
    if gap == 0:
        return float("nan")
    return (random_loss - scrub_loss) / gap


def evaluate(model, hypothesis: Hypothesis, data: Dataset, loss, *, seeds: Sequence[int] = (0,),
             reference=None, distances: Optional[Sequence[str]] = None, batch_size: Optional[int] = None,
             random_loss: Optional[Tensor] = None) -> Evaluation:
    """Scrub `hypothesis` for each seed and compute losses, baselines and distances per datum.

    `random_loss` `(n_seeds, N)` may be passed to reuse a baseline computed once
    for several hypotheses (same data, reference and seeds)."""
    names = tuple(distances) if distances is not None else default_distances(loss)
    unknown = [d for d in names if d not in DISTANCES]
    if unknown:
        raise scrub.MetricError(f"unknown distance(s) {unknown}; choose from {sorted(DISTANCES)}.")
    adapter = scrub.adapt(model)
    compiled = scrub.compile(adapter, hypothesis, data, reference)
    per = {k: [] for k in ("scrub", "model", "random", *names)}
    results = []
    for seed in seeds:
        res = run_compiled(compiled, seed=seed, reference=reference, batch_size=batch_size,
                                            metrics=_metric_fns(loss, names), keep_outputs=False)
        results.append(res)
        for k in ("scrub", "model", *names):
            per[k].append(res.metrics[k].cpu())
    if random_loss is None:
        base = scrub.compile(adapter, random_baseline(), data, reference)
        for seed in seeds:
            res = run_compiled(base, seed=seed, reference=reference, batch_size=batch_size,
                                                metrics={"random": _metric_fns(loss, ())["scrub"]},
                                                keep_outputs=False)
            per["random"].append(res.metrics["random"].cpu())
        random_loss = torch.stack(per["random"])
    return Evaluation(hypothesis, loss.name, tuple(seeds), torch.stack(per["scrub"]), torch.stack(per["model"]),
                      random_loss, {d: torch.stack(per[d]) for d in names}, results)


def _metric_fns(loss, names):
    """Chunk-wise metric functions for `scrub.run`: (scrubbed, model outputs, batch) -> per datum."""
    fns = {"scrub": lambda ys, ym, b: loss(ys, b), "model": lambda ys, ym, b: loss(ym, b)}
    for d in names:
        fns[d] = (lambda dist: lambda ys, ym, b: dist(ys, ym, loss.position_weights(b, ys.shape[1])))(DISTANCES[d])
    return fns
