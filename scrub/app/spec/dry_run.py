"""A spec's whole computation on a few reference data, so that `scrub validate` finds what `scrub run` would.

Compiling checks the hypothesis against the model and the data; what it cannot
see is whether the loss and the metrics can be computed on this data (a mask
field that does not exist, accuracy on data without labels, a user metric
that fails) and whether the model's outputs are finite. The dry run scrubs the
first `N_DRY` reference data under the first seed, with the random baseline,
and computes the loss and every metric on the outputs, one at a time, so each
failure is located at the spec key it comes from:

- the model's own outputs are NaN or infinite: `model`;
- the loss, or a distance reported by default: `loss`;
- an entry of `metrics`: `metrics[i]`.

It costs a few forward passes on `N_DRY` data, however large the run.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from scrub.app.spec.yamlpos import SpecError
from scrub.data import Dataset
from scrub.errors import ScrubError

N_DRY = 4  # reference data in the dry run


def dry_run(spec, model, data: Dataset, reference: Any, locate_error: Callable[[ScrubError], SpecError]) -> None:
    """Raise a located SpecError for the first thing a run of `spec` would fail on."""
    from scrub.engine.run import compile_many, run_compiled

    from metrics.evaluate import default_distances, measures, random_baseline

    doc = spec.doc
    try:
        outputs, comparisons = measures(spec.loss, spec.metrics)
    except ScrubError as exc:
        raise doc.error(("metrics",), exc.message) from None
    try:
        compiled = compile_many(model, [spec.hypothesis, random_baseline()], data,
                                _sample(reference, data, spec.seeds[0]))
        result = run_compiled(compiled, seed=spec.seeds[0], batch_size=spec.batch_size)[0]
    except ScrubError as exc:
        raise locate_error(exc) from None
    scrubbed, ym = result.scrubbed, result.model
    batch = compiled.data.take(result.reference)
    for name, t in (("the model's own outputs", ym), ("the scrubbed outputs", scrubbed)):
        bad = (~torch.isfinite(t.reshape(len(t), -1))).any(1)
        if bad.any():
            key = ("model",) if t is ym else ("hypothesis",)
            raise doc.error(key, f"{name} are NaN or infinite on {int(bad.sum())} of the first {len(t)} reference "
                                 "data: the model produces them, no measure can be computed. Check the model's "
                                 "weights and the data.")
    checks = [(("loss",), f"the loss {spec.loss.name!r}", lambda: spec.loss(scrubbed, batch))]
    listed = {m if isinstance(m, str) else m.name: i for i, m in enumerate(spec.metrics)}
    defaults = set(default_distances(spec.loss))
    for m in outputs:
        checks.append((("metrics", listed[m.name]), f"metric {m.name!r}", _bind(m, scrubbed, batch)))
    for c in comparisons:
        key = ("metrics", listed[c.name]) if c.name in listed and c.name not in defaults else ("loss",)
        what = f"distance {c.name!r}" + (" (reported for this loss by default)" if key == ("loss",) else "")
        checks.append((key, what, _bind_comparison(c, scrubbed, ym, batch)))
    for key, what, compute in checks:
        _measure(doc, key, what, compute, len(batch))


def _sample(reference: Any, data: Dataset, seed: int):
    """The first N_DRY reference data of the run (as indices into the pool, or a Dataset outside it)."""
    from scrub.engine.run import reference_indices

    if isinstance(reference, Dataset):
        return reference.take(np.arange(min(N_DRY, len(reference))))
    return reference_indices(reference, len(data), len(data), seed)[:N_DRY]


def _bind(metric, outputs, batch):
    return lambda: metric(outputs, batch)


def _bind_comparison(metric, scrubbed, model_out, batch):
    return lambda: metric(scrubbed, model_out, batch)


def _measure(doc, key: tuple, what: str, compute: Callable, n: int) -> None:
    try:
        values = compute()
    except SpecError:
        raise
    except ScrubError as exc:
        raise doc.error(key, f"{what} cannot be computed on this data: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - a user's metric function: say which, keep the cause
        raise doc.error(key, f"{what} failed on the first {n} reference data: {type(exc).__name__}: {exc}") from None
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise doc.error(key, f"{what} must give one value per datum, shape ({n},); got {shape}.")
    bad = ~torch.isfinite(values.float())
    if bad.any():
        raise doc.error(key, f"{what} is NaN or infinite on {int(bad.sum())} of the first {n} reference data "
                             "although the outputs are finite: check the data it reads (labels, masks).")
