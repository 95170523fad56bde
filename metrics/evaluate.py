"""Evaluate hypotheses: scrub them with the baselines, collect per-datum values.

    ev = evaluate(model, hypothesis, data, NextTokenLoss(), seeds=(0, 1))
    ev.summary()                 # point values: expected loss, baselines, loss recovered, distances
    ev.estimate("loss_recovered")  # with bootstrap intervals over data and over seeds

Hypotheses and the random baseline (the hypothesis whose only node is a root
with the unconditional sampler), under every seed, run as one merged plan, so
they share their draws and the plain forward passes. The same plan scores each
hypothesis once more with its unexplained inputs drawn independently
(`metrics.independent`; no extra forward pass), which the verdict uses to say
when the parts a hypothesis leaves out cancel. Everything is kept per (seed,
reference datum); statistics are computed from those same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor

import scrub
from scrub.data import Dataset
from scrub.compiler.plan import merge_plans
from scrub.engine.run import Compiled, check_seeds, compile_many, run_seeds

from hypotheses.nodes import Hypothesis, Node
from hypotheses.samplers import Unconditional

from metrics.distances import DISTANCES
from metrics.independent import IndependentDraws, block_for, plan_check
from metrics.protocol import as_metrics, read_positions
from metrics.stats import Estimate, estimate


def random_baseline() -> Hypothesis:
    """The hypothesis 'nothing matters': a root that draws its datum unconditionally."""
    return Hypothesis(Node("root", sampler=Unconditional()), name="random baseline")


def model_baseline() -> Hypothesis:
    """The hypothesis 'everything matters': the root alone, exact. Equals the model."""
    return Hypothesis(Node("root"), name="model")


def default_distances(loss) -> tuple[str, ...]:
    """The distances an evaluation reports unless told otherwise: the loss says (`reported_distances`)."""
    return tuple(getattr(loss, "reported_distances", ("kl", "kl_reverse", "l2_logits", "l2_probs")))


def default_distance(loss) -> str:
    """The distance verdicts and cancel-out reports judge by unless told otherwise: the loss says."""
    return getattr(loss, "default_distance", "kl")


def loss_recovered(random_loss: float, scrub_loss: float, model_loss: float) -> float:
    """(L_random - L_scrub) / (L_random - L_model), reported as it is (never clipped).

    NaN when the baselines coincide: then no loss is there to recover, and any
    number would mislead."""
    gap = random_loss - model_loss
    if gap == 0:
        return float("nan")
    return (random_loss - scrub_loss) / gap


@dataclass
class Evaluation:
    """Per-(seed, datum) values of one hypothesis; tensors `(n_seeds, N)` on the CPU.

    scrubbed / model / random: output metrics ("loss" and any others) on the
    scrubbed outputs, the model's own outputs and the random baseline's.
    comparisons: comparison metrics (distances, agreement) of the scrubbed
    outputs against the model's; random_comparisons: the same for the random
    baseline (the scale of "everything resampled"). independent: the same
    hypothesis scored with its unexplained inputs drawn independently (None when
    not computed, or when that would change nothing). extras: values of raw
    per-datum functions passed to `evaluate_many(extras=...)`."""

    hypothesis: Hypothesis
    loss_name: str
    seeds: tuple[int, ...]
    scrubbed: dict[str, Tensor]
    model: dict[str, Tensor]
    random: dict[str, Tensor]
    comparisons: dict[str, Tensor] = field(default_factory=dict)
    random_comparisons: dict[str, Tensor] = field(default_factory=dict)
    results: list = field(default_factory=list)  # ScrubResult per seed (audit trail, outputs dropped)
    main_distance: str = "kl"  # the distance verdicts judge by (the loss's default_distance)
    warnings: tuple[str, ...] = ()  # e.g. a feature that is constant over the pool; verdicts flag them
    independent: Optional[IndependentDraws] = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.hypothesis.name

    @property
    def scrub_loss(self) -> Tensor:
        return self.scrubbed["loss"]

    @property
    def model_loss(self) -> Tensor:
        return self.model["loss"]

    @property
    def random_loss(self) -> Tensor:
        return self.random["loss"]

    @property
    def distances(self) -> dict[str, Tensor]:
        return self.comparisons

    def loss_recovered(self) -> float:
        return loss_recovered(self.random_loss.mean().item(), self.scrub_loss.mean().item(),
                              self.model_loss.mean().item())

    def estimate(self, name: str, **kw) -> Estimate:
        """An Estimate for: 'loss_recovered', 'expected_loss', 'model_loss', 'random_loss', a comparison
        metric's name, an output metric's name (its scrubbed value) or '<metric>_recovered'."""
        if name in ("loss_recovered",) or name.endswith("_recovered"):
            metric = "loss" if name == "loss_recovered" else name[: -len("_recovered")]
            arrays = [self.random[metric], self.scrubbed[metric], self.model[metric]]
            return estimate(arrays, loss_recovered, **kw)
        table = {"expected_loss": self.scrub_loss, "model_loss": self.model_loss, "random_loss": self.random_loss,
                 **self.comparisons, **{k: v for k, v in self.scrubbed.items() if k != "loss"}}
        if name not in table:
            raise scrub.MetricError(f"no metric {name!r} in this evaluation; it has {sorted(table)}.")
        return estimate([table[name]], **kw)

    def estimates(self) -> dict[str, Estimate]:
        names = ["loss_recovered", "expected_loss", "model_loss", "random_loss", *self.comparisons]
        for k in self.scrubbed:
            if k != "loss":
                names += [k, f"{k}_recovered"]
        return {n: self.estimate(n) for n in names}

    def state(self) -> dict:
        """The per-datum tensors, for saving (e.g. one file per finished seed)."""
        return {"seeds": list(self.seeds), "loss_name": self.loss_name, "scrubbed": self.scrubbed,
                "model": self.model, "random": self.random, "comparisons": self.comparisons,
                "random_comparisons": self.random_comparisons, "main_distance": self.main_distance,
                "warnings": list(self.warnings),
                "independent": None if self.independent is None else self.independent.state()}

    @classmethod
    def from_state(cls, hypothesis: Hypothesis, state: dict) -> "Evaluation":
        return cls(hypothesis, state["loss_name"], tuple(state["seeds"]), state["scrubbed"], state["model"],
                   state["random"], state["comparisons"], state["random_comparisons"],
                   main_distance=state.get("main_distance", "kl" if "kl" in state["comparisons"] else "l2_logits"),
                   warnings=tuple(state.get("warnings", ())),
                   independent=IndependentDraws.from_state(state.get("independent")))

    @classmethod
    def merge_seeds(cls, parts: Sequence["Evaluation"]) -> "Evaluation":
        """One evaluation from evaluations of the same hypothesis and data under different seeds."""
        first = parts[0]
        cat = lambda objs, attr: {k: torch.cat([getattr(o, attr)[k] for o in objs])  # noqa: E731
                                  for k in getattr(objs[0], attr)}
        independent = None
        if all(p.independent is not None for p in parts):
            ind = [p.independent for p in parts]
            independent = IndependentDraws(cat(ind, "scrubbed"), cat(ind, "comparisons"), ind[0].edges, ind[0].draws,
                                           [r for i in ind for r in i.results])
        return cls(first.hypothesis, first.loss_name, tuple(s for p in parts for s in p.seeds), cat(parts, "scrubbed"),
                   cat(parts, "model"), cat(parts, "random"), cat(parts, "comparisons"),
                   cat(parts, "random_comparisons"), [r for p in parts for r in p.results], first.main_distance,
                   tuple(dict.fromkeys(w for p in parts for w in p.warnings)), independent)

    def split_seeds(self) -> list["Evaluation"]:
        """One evaluation per seed (the inverse of `merge_seeds`), e.g. to save each seed of a stacked run."""
        def part(obj, i: int, attr: str) -> dict:
            return {k: v[i:i + 1].clone() for k, v in getattr(obj, attr).items()}  # not views: saved alone

        attrs = ("scrubbed", "model", "random", "comparisons", "random_comparisons")
        out = []
        for i, seed in enumerate(self.seeds):
            ind = self.independent
            independent = None if ind is None else IndependentDraws(
                part(ind, i, "scrubbed"), part(ind, i, "comparisons"), ind.edges, ind.draws, ind.results[i:i + 1])
            out.append(Evaluation(self.hypothesis, self.loss_name, (seed,), *(part(self, i, a) for a in attrs),
                                  self.results[i:i + 1], self.main_distance, self.warnings, independent,
                                  part(self, i, "extras")))
        return out

    def summary(self) -> dict:
        out = {"hypothesis": self.name, "loss": self.loss_name, "n_reference": self.scrub_loss.shape[1],
               "n_seeds": len(self.seeds), "expected_loss": self.scrub_loss.mean().item(),
               "model_loss": self.model_loss.mean().item(), "random_loss": self.random_loss.mean().item(),
               "loss_recovered": self.loss_recovered()}
        out.update({name: v.mean().item() for name, v in self.comparisons.items()})
        out.update({f"random_{name}": v.mean().item() for name, v in self.random_comparisons.items()})
        for k, v in self.scrubbed.items():
            if k != "loss":
                out[k] = v.mean().item()
                out[f"{k}_recovered"] = loss_recovered(self.random[k].mean().item(), v.mean().item(),
                                                       self.model[k].mean().item())
        return out


def evaluate_many(model, hypotheses: Sequence[Hypothesis], data: Dataset, loss, *, seeds: Sequence[int] = (0,),
                  reference=None, metrics: Optional[Sequence] = None, distances: Optional[Sequence[str]] = None,
                  batch_size: Optional[int] = None, reference_seed: Optional[int] = None,
                  log_to=None, check_independent: bool = True,
                  extras: Optional[Mapping[str, Callable]] = None,
                  cache_mb: Optional[float] = None) -> list[Evaluation]:
    """Evaluate several hypotheses against one model, data, loss and seeds, in one stacked pass.

    metrics: extra OutputMetric / ComparisonMetric objects (or distance names).
    distances: built-in distances to report (default: KL both ways and L2 for
        classifiers and language models, L2 of outputs for MSE).
    reference_seed: draws the reference data when `reference` is a count; every
        seed uses the same reference data (default: the first seed), so each
        datum's values under different seeds are repeated measurements of it.
    log_to: a sink called as `log_to(evaluations, data)` once they are computed, e.g.
        `scrub.app.report.to_wandb(project="induction", mode="offline")`, which logs
        each evaluation with its default verdict as one W&B run.
    check_independent: also score each hypothesis with its unexplained inputs drawn
        independently (`ev.independent`; see metrics/independent.py). It adds no
        forward pass, only the variant's site evaluations.
    extras: name -> fn(scrubbed, model, batch) giving any per-datum tensor, kept
        unchecked in `ev.extras` (e.g. the cancel-out report's output sketches).
    cache_mb: cap on plain values kept for reuse (see `scrub.run`).

    Only the output positions the loss and metrics read are computed, where they say which
    (`metrics.protocol.read_positions`), no `extras` read the outputs, and the model allows it."""
    check_loss(loss)
    seeds = check_seeds(seeds)
    outputs, comparisons = measures(loss, metrics, distances)
    hypotheses = list(hypotheses)
    compiled = compile_many(model, hypotheses + [random_baseline()], data, reference)
    block = block_for(batch_size)
    checks = [plan_check(h, compiled.adapter.graph, compiled.plan.n_positions, block) if check_independent else None
              for h in hypotheses]
    compiled = _with_checks(compiled, [c for c in checks if c is not None])
    fns = {"loss": finite("loss", lambda ys, ym, b: loss(ys, b)),
           "model:loss": finite("loss", lambda ys, ym, b: loss(ym, b))}
    for m in outputs:
        fns[m.name] = finite(m.name, (lambda m: lambda ys, ym, b: m(ys, b))(m))
        fns[f"model:{m.name}"] = finite(m.name, (lambda m: lambda ys, ym, b: m(ym, b))(m))
    for c in comparisons:
        fns[c.name] = finite(c.name, c)
    fns.update(extras or {})
    # all seeds in one stacked pass: the reference data's forward pass and plain values are shared
    per_seed = run_seeds(compiled, list(seeds), batch_size=batch_size, metrics=fns, keep_outputs=False,
                         reference_seed=reference_seed, read_positions=None if extras else read_positions(loss, outputs + comparisons),
                         cache_mb=cache_mb)
    out_names = ["loss"] + [m.name for m in outputs]
    # the distance verdicts judge by: the loss's default, or the first distance asked for when that is absent
    computed = [c.name for c in comparisons if c.name in DISTANCES]
    main = default_distance(loss)
    if main not in computed and computed:
        main = computed[0]
    stack = lambda k, name: torch.stack([runs[k].metrics[name].cpu() for runs in per_seed])  # noqa: E731
    rnd = len(hypotheses)
    random_vals = {n: stack(rnd, n) for n in out_names}
    random_cmp = {c.name: stack(rnd, c.name) for c in comparisons}
    model_vals = {n: stack(0, f"model:{n}") for n in out_names}
    evaluations = [Evaluation(h, loss.name, tuple(seeds), {n: stack(k, n) for n in out_names}, model_vals,
                              random_vals, {c.name: stack(k, c.name) for c in comparisons}, random_cmp,
                              [runs[k] for runs in per_seed], main, compiled.warnings[k],
                              extras={name: stack(k, name) for name in (extras or {})})
                   for k, h in enumerate(hypotheses)]
    k = rnd + 1  # the checks' outputs follow the random baseline's, in the hypotheses' order
    for ev, check in zip(evaluations, checks):
        if check is not None:
            ev.independent = IndependentDraws({n: stack(k, n) for n in out_names},
                                              {c.name: stack(k, c.name) for c in comparisons}, check.edges,
                                              check.draws, [runs[k] for runs in per_seed])
            k += 1
    if log_to is not None:  # logging happens at the edge: the sink comes from the application layer
        if not callable(log_to):
            raise scrub.MetricError(f"log_to={log_to!r}: pass a sink such as scrub.app.report.to_wandb(project=...), "
                                    "a callable taking (evaluations, data).")
        log_to(evaluations, data)
    return evaluations


def measures(loss, metrics: Optional[Sequence] = None, distances: Optional[Sequence[str]] = None):
    """(output metrics, comparison metrics) an evaluation computes: the loss's reported distances (or
    `distances`) and `metrics`. A distance named again is computed once."""
    dist_names = tuple(distances) if distances is not None else default_distances(loss)
    return as_metrics(list(dist_names) + list(metrics or ()), loss)


def check_loss(loss) -> None:
    """A loss is an object called as loss(outputs, batch) (NextTokenLoss(), ...), not its name."""
    if isinstance(loss, str):
        raise scrub.MetricError(f"loss={loss!r} is a name; pass a loss object such as NextTokenLoss(), "
                                "ClassificationLoss(position=0) or MSELoss() (spec files name losses; Python passes "
                                "objects).")
    if not callable(loss) or not hasattr(loss, "position_weights"):
        raise scrub.MetricError(f"loss={loss!r} is not a loss: pass NextTokenLoss(), ClassificationLoss(), MSELoss() "
                                "or your own class with __call__(outputs, batch) and position_weights(batch, n_pos) "
                                "(docs/contributing.md).")


def finite(name: str, fn):
    """`fn(scrubbed, model, batch)` whose values must be finite; when they are not, say who is at fault:
    the model (its own outputs are NaN or infinite), the scrubbed outputs, or the measure itself."""
    def checked(ys: Tensor, ym: Tensor, b: Dataset) -> Tensor:
        try:
            values = fn(ys, ym, b)
        except scrub.MetricError:  # a metric's own check; the outputs may be what is wrong
            if torch.isfinite(ys).all() and torch.isfinite(ym).all():
                raise
            values = torch.full((len(ys),), float("nan"))
        if isinstance(values, Tensor) and not torch.isfinite(values).all():
            raise scrub.MetricError(nonfinite_culprit(name, values, ys, ym))
        return values
    return checked


def nonfinite_culprit(name: str, values: Tensor, ys: Tensor, ym: Tensor) -> str:
    def rows(t: Tensor) -> Tensor:
        return (~torch.isfinite(t.reshape(len(t), -1))).any(1).nonzero().flatten()

    for t, who in ((ym, "the model's own outputs"), (ys, "the scrubbed outputs")):
        bad = rows(t)
        if len(bad):
            cause = ("the model itself produces them on this data (check its weights and inputs); no metric is at "
                     "fault") if t is ym else ("the model produces them on the resampled inputs the hypothesis "
                                               "builds (check its numerics, e.g. a missing LayerNorm epsilon)")
            return (f"{who} are NaN or infinite for {len(bad)} of {len(t)} reference data in a chunk (first: row "
                    f"{int(bad[0])}): {cause}.")
    bad = rows(values)
    return (f"{name!r} is NaN or infinite for {len(bad)} of {len(values)} reference data in a chunk (first: row "
            f"{int(bad[0])}) although the outputs are finite: check the data it reads (labels, masks) and the "
            "measure itself.")


def _with_checks(compiled: Compiled, checks: list) -> Compiled:
    """The compiled batch with each check's variant appended to its hypotheses and plan."""
    if not checks:
        return compiled
    plan = merge_plans([compiled.plan] + [c.plan for c in checks])
    return replace(compiled, hypotheses=compiled.hypotheses + tuple(c.variant for c in checks), plan=plan)


def evaluate(model, hypothesis: Hypothesis, data: Dataset, loss, **kw) -> Evaluation:
    """Evaluate one hypothesis (see `evaluate_many`)."""
    return evaluate_many(model, [hypothesis], data, loss, **kw)[0]
