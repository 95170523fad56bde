"""The metric protocol: two kinds of per-datum metric, both plain functions.

- An *output metric* scores outputs against the data: `fn(outputs, batch) ->
  (N,)`. Losses, accuracy and logit differences are output metrics. It is
  evaluated on the scrubbed outputs, the model's own outputs and the random
  baseline's, so a "recovered" fraction exists for every one of them.
- A *comparison metric* scores scrubbed outputs against the model's own on the
  same reference datum: `fn(scrubbed, model, batch) -> (N,)`. Output distances
  (KL, L2) and agreement with the model's prediction are comparison metrics.

Add one by wrapping a function:

    accuracy_at_0 = OutputMetric("acc@0", lambda out, b: (out[:, 0].argmax(-1) == b.labels).float())
    flips = ComparisonMetric("flips", lambda ys, ym, b: (ys[:, 0].argmax(-1) != ym[:, 0].argmax(-1)).float())

Loss classes (`NextTokenLoss`, ...) are output metrics; they also say which
positions they read (`position_weights`), which comparison metrics average over.

Spec files name metrics from `METRICS` (accuracy, agreement, logit_diff,
function) or distances from `metrics.distances.DISTANCES` by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from scrub.data import Dataset
from scrub.errors import MetricError

from hypotheses.registry import Registry, SpecValue, callable_object

from metrics.distances import DISTANCES

METRICS: Registry = Registry("metric")


@dataclass(frozen=True)
class OutputMetric:
    """positions: the output positions `fn` reads, if it says (then the engine may compute only those;
    None: any position)."""

    name: str
    fn: Callable[[Tensor, Dataset], Tensor] = field(compare=False)
    higher_is_better: bool = True
    positions: Optional[tuple[int, ...]] = None

    def __call__(self, outputs: Tensor, batch: Dataset) -> Tensor:
        return _check(self.name, self.fn(outputs, batch), len(batch))


@dataclass(frozen=True)
class ComparisonMetric:
    """positions: as for `OutputMetric`."""

    name: str
    fn: Callable[[Tensor, Tensor, Dataset], Tensor] = field(compare=False)
    positions: Optional[tuple[int, ...]] = None

    def __call__(self, scrubbed: Tensor, model: Tensor, batch: Dataset) -> Tensor:
        return _check(self.name, self.fn(scrubbed, model, batch), len(batch))


def _check(name: str, values: Tensor, n: int) -> Tensor:
    if not isinstance(values, Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise MetricError(f"metric {name!r} must return one value per datum, shape ({n},); got {shape}.")
    if not torch.isfinite(values).all():
        raise MetricError(f"metric {name!r} returned NaN or infinite values for "
                          f"{int((~torch.isfinite(values)).sum())} data.")
    return values.float()


# --- built-in output metrics -------------------------------------------------------

def accuracy(position: int = 0) -> OutputMetric:
    """1 where the argmax at `position` equals the label."""
    def fn(out: Tensor, batch: Dataset) -> Tensor:
        labels = torch.as_tensor(batch.column("labels"), device=out.device)
        return (out[:, position].argmax(-1) == labels).float()
    return OutputMetric(f"accuracy@{position}", fn, positions=(position,))


def logit_diff(correct: int | str, incorrect: int | str, position: int = -1) -> OutputMetric:
    """logit[correct] - logit[incorrect] at `position`. Tokens are ids, or names of dataset fields
    holding one id per datum (e.g. the name-mover task's correct and distractor names)."""
    def token(spec, batch, device):
        if isinstance(spec, str):
            return torch.as_tensor(batch.column(spec), device=device).long()
        return torch.full((len(batch),), int(spec), device=device, dtype=torch.long)

    def fn(out: Tensor, batch: Dataset) -> Tensor:
        at = out[:, position].float()
        rows = torch.arange(len(batch), device=out.device)
        return at[rows, token(correct, batch, out.device)] - at[rows, token(incorrect, batch, out.device)]
    return OutputMetric(f"logit_diff({correct},{incorrect})@{position}", fn, positions=(position,))


# --- built-in comparison metrics ----------------------------------------------------

def agreement(position: int = 0) -> ComparisonMetric:
    """1 where the scrubbed argmax at `position` equals the model's own prediction."""
    return ComparisonMetric(f"agreement@{position}",
                            lambda ys, ym, b: (ys[:, position].argmax(-1) == ym[:, position].argmax(-1)).float(),
                            positions=(position,))


def distance(name: str, loss) -> ComparisonMetric:
    """A registered output distance (kl, kl_reverse, l2_logits, l2_probs, ...) over the positions `loss` reads."""
    if name not in DISTANCES:
        raise MetricError(f"unknown distance {name!r}; choose from {', '.join(DISTANCES)}.")
    fn = DISTANCES[name]
    dims = getattr(loss, "dims", None)  # compare only the outputs the loss reads

    def compare(ys: Tensor, ym: Tensor, b: Dataset) -> Tensor:
        if dims is not None:
            ys, ym = ys[..., list(dims)], ym[..., list(dims)]
        return fn(ys, ym, loss.position_weights(b, ys.shape[1]))
    return ComparisonMetric(name, compare, positions=positions_read(loss))


def positions_read(loss) -> Optional[tuple[int, ...]]:
    """The output positions a loss reads, if it says (`positions_read()`); None: any."""
    says = getattr(loss, "positions_read", None)
    return says() if callable(says) else None


def read_positions(loss, metrics: Sequence) -> Optional[tuple[int, ...]]:
    """The output positions an evaluation with this loss and these metrics reads: the union of what each
    says, or None (every position) when one does not say."""
    parts = [positions_read(loss)] + [getattr(m, "positions", None) for m in metrics]
    if any(p is None for p in parts):
        return None
    return tuple(sorted({int(q) for p in parts for q in p}))


def as_metrics(items: Optional[Sequence], loss) -> tuple[list[OutputMetric], list[ComparisonMetric]]:
    """Split user-given metrics by kind; names of built-in distances are accepted as strings (a distance
    named twice, e.g. one that is reported by default anyway, is computed once)."""
    outputs, comparisons = [], []
    named: set[str] = set()
    for m in items or ():
        if isinstance(m, str):
            if m not in named:
                named.add(m)
                comparisons.append(distance(m, loss))
        elif isinstance(m, OutputMetric):
            outputs.append(m)
        elif isinstance(m, ComparisonMetric):
            comparisons.append(m)
        else:
            raise MetricError(f"{m!r} is not a metric: wrap a function in OutputMetric(name, fn) "
                              "(fn(outputs, batch)) or ComparisonMetric(name, fn) (fn(scrubbed, model, batch)).")
    names = [m.name for m in outputs + comparisons]
    twice = sorted({n for n in names if names.count(n) > 1} | ({"loss"} & set(names)))
    if twice:
        raise MetricError(f"metric names must be unique and not 'loss': {', '.join(map(repr, twice))} "
                          f"{'is' if len(twice) == 1 else 'are'} taken (metrics: {', '.join(names)}). Give your "
                          "metric another name.")
    return outputs, comparisons


# --- how spec files name metrics -----------------------------------------------------

class _PositionMetric:
    """`{accuracy: {position: P}}` or `{accuracy: P}` (and the same for agreement)."""

    def __init__(self, make):
        self.make = make
        self.doc = (make.__doc__ or "").strip()

    def from_spec(self, spec: SpecValue):
        kind = self.make.__name__
        spec.mapping((kind,), f"the {kind} metric")
        args = spec.value[kind]
        pos = (args or {}).get("position", 0) if isinstance(args, dict) or args is None else args
        if not isinstance(pos, int) or isinstance(pos, bool):
            raise spec.error(f"{kind} takes a position (an integer); got {pos!r}.", kind)
        return self.make(pos)


class _LogitDiff:
    doc = "logit[correct] - logit[incorrect] at a position (tokens are ids or dataset field names)"

    @staticmethod
    def from_spec(spec: SpecValue):
        spec.mapping(("logit_diff",), "the logit_diff metric")
        args = spec.value["logit_diff"]
        if not isinstance(args, dict) or not {"correct", "incorrect"} <= set(args):
            raise spec.error("logit_diff needs {correct: TOKEN|FIELD, incorrect: TOKEN|FIELD, position: P}.",
                             "logit_diff")
        return logit_diff(args["correct"], args["incorrect"], args.get("position", -1))


class _FunctionMetric:
    """`{function: package.module.fn, kind: output|comparison, name: ...}`."""

    doc = "a function named by import path: fn(outputs, batch) (output) or fn(scrubbed, model, batch) (comparison)"
    KEYS = ("function", "kind", "name")

    @staticmethod
    def from_spec(spec: SpecValue):
        spec.mapping(_FunctionMetric.KEYS, "a function metric")
        fn = callable_object(spec, "function", what="metric")
        metric_kind = spec.get("kind", "comparison")
        if metric_kind not in ("output", "comparison"):
            raise spec.error("kind must be 'output' (fn(outputs, batch)) or 'comparison' (fn(scrubbed, model, batch)).",
                             "kind")
        cls = OutputMetric if metric_kind == "output" else ComparisonMetric
        return cls(spec.typed("name", str, "a string", fn.__name__), fn)


METRICS.register("accuracy", _PositionMetric(accuracy))
METRICS.register("agreement", _PositionMetric(agreement))
METRICS.register("logit_diff", _LogitDiff())
METRICS.register("function", _FunctionMetric())


def metric_from_spec(spec: SpecValue):
    """One entry of a spec's `metrics:` list: a distance name, or a metric from `METRICS`."""
    if isinstance(spec.value, str):
        if spec.value not in DISTANCES:
            raise spec.error(f"unknown metric {spec.value!r}; names of distances: {', '.join(DISTANCES)}; or a "
                             f"mapping naming one of {', '.join(METRICS)}.")
        return spec.value
    return METRICS.parse(spec)
