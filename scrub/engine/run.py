"""The engine's public entry points: compile a hypothesis, run it.

    compiled = scrub.compile(model, hypothesis, data)   # validates, plans; no forward pass
    result = scrub.run(model, hypothesis, data, seed=0)  # samples, scrubs, returns outputs + audit
    results = scrub.run_many(model, [h1, h2, ...], data)  # one batched pass; shared draws where identical

`run` returns plain values (a ScrubResult); metrics, reports and logging
consume them. Metrics passed to `run` are computed chunk by chunk, so with
`keep_outputs=False` memory stays bounded for any number of reference data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from scrub.adapters import Adapter, adapt
from scrub.compiler.descent import compile_hypothesis
from scrub.compiler.data_checks import check_features, check_finite
from scrub.compiler.plan import Plan, for_seeds, merge_plans
from scrub.data import Dataset
from scrub.engine.executor import chunk_size_for, execute, run_width
from scrub.engine.result import ScrubResult
from scrub.engine.sampling import draw_roles, stream
from scrub.errors import DataError, HypothesisError

from hypotheses.nodes import Hypothesis
from hypotheses.samplers import Pool

Reference = Union[None, int, Sequence[int], np.ndarray, Dataset]
MetricFn = Callable[[Tensor, Tensor, Dataset], Tensor]


@dataclass
class Compiled:
    """Hypotheses checked against a model and dataset, with their (merged) plan."""

    hypotheses: tuple[Hypothesis, ...]
    adapter: Adapter
    data: Dataset  # the pool, followed by reference data from outside it (if any)
    n_pool: int
    plan: Plan
    reference: Reference = None
    pool: Optional[Pool] = None  # the sampling pool with the agreement classes computed at compile time
    warnings: tuple = ()  # per hypothesis: warnings about degenerate features (see compiler/data_checks.py)

    @property
    def hypothesis(self) -> Hypothesis:
        return self.hypotheses[0]

    def explain(self) -> str:
        lines = [str(h) for h in self.hypotheses] + [self.plan.summary()]
        lines += [f"  role {r.id}: {r.label} <- {r.sampler or 'reference data'}" for r in self.plan.roles]
        lines += [f"  eval {e.id}: {e.label}" for e in self.plan.evals]
        return "\n".join(lines)


def compile_many(model, hypotheses: Sequence[Hypothesis], data: Dataset, reference: Reference = None) -> Compiled:
    """Validate each hypothesis against `model` and `data` and plan them as one batch."""
    if not isinstance(data, Dataset):
        raise DataError(f"expected a scrub.Dataset, got {type(data).__name__}.")
    hypotheses = tuple(hypotheses)
    if not hypotheses:
        raise HypothesisError("no hypotheses to compile.")
    for h in hypotheses:
        if not isinstance(h, Hypothesis):
            raise HypothesisError(f"expected a Hypothesis, got {type(h).__name__}.")
    adapter = adapt(model)
    combined, n_pool = data, len(data)
    if isinstance(reference, Dataset):
        combined = _concat(data, reference)
    check_finite(combined)
    if reference is not None and not isinstance(reference, Dataset):
        reference_indices(reference, n_pool, len(combined), 0)  # a bad reference is an error now, not at run time
    adapter.check_inputs(combined.inputs.to(adapter.device))
    n_pos = adapter.n_positions(combined.inputs)
    plans = [compile_hypothesis(h, adapter.graph, n_pos) for h in hypotheses]
    plan = plans[0] if len(plans) == 1 else merge_plans(plans)
    pool = Pool(combined, n_pool)
    notes = tuple(check_features(h, pool) for h in hypotheses)  # features fail here, naming their node
    return Compiled(hypotheses, adapter, combined, n_pool, plan, reference, pool, notes)


def compile(model, hypothesis: Hypothesis, data: Dataset, reference: Reference = None) -> Compiled:  # noqa: A001
    """Validate `hypothesis` against `model` and `data` and plan the scrub. Raises on any problem."""
    return compile_many(model, [hypothesis], data, reference)


def run(model, hypothesis: Hypothesis, data: Dataset, *, seed: int = 0, reference: Reference = None,
        batch_size: Optional[int] = None, metrics: Optional[Mapping[str, MetricFn]] = None,
        keep_outputs: bool = True, read_positions: Optional[Sequence[int]] = None,
        cache_mb: Optional[float] = None) -> ScrubResult:
    """Scrub `model` under `hypothesis` on `data`.

    reference: which data are the reference data x0: None (all of `data`, in
        order), an int n (n seeded draws with replacement), explicit indices,
        or a Dataset of reference data outside the sampling pool.
    batch_size: reference data per chunk (default: sized to the plan).
    metrics: name -> fn(scrubbed, model_outputs, batch) giving one value per datum,
        computed per chunk.
    read_positions: the output positions the caller reads (default: all). Where the model allows
        (`Adapter.trims`), only the leading positions they depend on are computed; outputs hold NaN
        beyond them.
    cache_mb: cap on plain values kept for reuse across chunks, roles and seeds
        (default `scrub.engine.activations.DEFAULT_CACHE_MB`; 0: no cache).
    """
    compiled = compile(model, hypothesis, data, reference)
    return run_compiled(compiled, seed=seed, batch_size=batch_size, metrics=metrics, keep_outputs=keep_outputs,
                        read_positions=read_positions, cache_mb=cache_mb)[0]


def run_many(model, hypotheses: Sequence[Hypothesis], data: Dataset, *, seed: int = 0, reference: Reference = None,
             batch_size: Optional[int] = None, metrics: Optional[Mapping[str, MetricFn]] = None,
             keep_outputs: bool = True, read_positions: Optional[Sequence[int]] = None,
             cache_mb: Optional[float] = None) -> list[ScrubResult]:
    """Scrub several hypotheses in one batched pass (see `run`); one result per hypothesis."""
    compiled = compile_many(model, hypotheses, data, reference)
    return run_compiled(compiled, seed=seed, batch_size=batch_size, metrics=metrics, keep_outputs=keep_outputs,
                        read_positions=read_positions, cache_mb=cache_mb)


def reference_indices(reference: Reference, n_pool: int, n_total: int, seed: int) -> np.ndarray:
    if reference is None:
        return np.arange(n_pool)
    if isinstance(reference, Dataset):
        return np.arange(n_pool, n_total)
    if isinstance(reference, bool):
        raise DataError(f"reference={reference!r}: give a count, indices into the data, or a Dataset.")
    if isinstance(reference, (int, np.integer)):
        if reference <= 0:
            raise DataError(f"reference={reference}: ask for at least one reference datum.")
        return stream(seed, "reference").integers(0, n_pool, size=int(reference))
    idx = np.asarray(reference.cpu() if isinstance(reference, torch.Tensor) else reference)
    if idx.ndim != 1 or len(idx) == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n_pool:
        raise DataError(f"reference must be a count, a Dataset, or a non-empty 1-d list of integer indices within "
                        f"0..{n_pool - 1}; got {type(reference).__name__}.")
    return idx.astype(np.int64)


def run_compiled(compiled: Compiled, *, seed: int = 0, batch_size: Optional[int] = None,
                 metrics: Optional[Mapping[str, MetricFn]] = None, keep_outputs: bool = True,
                 reference_seed: Optional[int] = None, read_positions: Optional[Sequence[int]] = None,
                 cache_mb: Optional[float] = None) -> list[ScrubResult]:
    """Sample and execute a compiled batch; one ScrubResult per hypothesis.

    reference_seed: the seed that draws the reference data when `reference` is a
    count (default: `seed`). Runs meant to be compared datum by datum (the seeds of
    one evaluation) must share it, so that datum i is the same datum in every run."""
    return run_seeds(compiled, check_seeds([seed], "seed"), batch_size=batch_size, metrics=metrics,
                     keep_outputs=keep_outputs, reference_seed=reference_seed, read_positions=read_positions,
                     cache_mb=cache_mb)[0]


def run_seeds(compiled: Compiled, seeds: Sequence[int], *, batch_size: Optional[int] = None,
              metrics: Optional[Mapping[str, MetricFn]] = None, keep_outputs: bool = True,
              reference_seed: Optional[int] = None, read_positions: Optional[Sequence[int]] = None,
              cache_mb: Optional[float] = None) -> list[list[ScrubResult]]:
    """Every hypothesis under every seed in one stacked pass: results[seed index][hypothesis index].

    The reference data (drawn with `reference_seed`, default the first seed) and
    everything computed on them are shared by all seeds; plain values are computed
    once per distinct datum (see `run` for `read_positions` and `cache_mb`)."""
    seeds = check_seeds(seeds)
    plan = compiled.plan if len(seeds) == 1 else for_seeds(compiled.plan, seeds)
    adapter = compiled.adapter
    ref_seed = seeds[0] if reference_seed is None else check_seeds([reference_seed], "reference_seed")[0]
    ref = reference_indices(compiled.reference, compiled.n_pool, len(compiled.data), ref_seed)
    roles_np = draw_roles(plan, compiled.data, compiled.n_pool, ref, seeds[0], compiled.pool)
    device = adapter.device
    data = compiled.data.to(device)
    roles = {r: torch.as_tensor(v, device=device) for r, v in roles_np.items()}  # one transfer, before the loop
    n_pos = adapter.n_positions(data.inputs)
    width = run_width(plan, adapter, n_pos, read_positions)
    dims = adapter.dims()
    out_size = dims.d_vocab_out / dims.d_model if dims is not None else 1.0
    chunk = check_batch_size(batch_size) or chunk_size_for(plan, width_fraction=width / n_pos, output_size=out_size)
    K = len(plan.outputs)
    scrubbed: list[list] = [[] for _ in range(K)]
    model_out: list = []
    metric_parts = [{name: [] for name in (metrics or {})} for _ in range(K)]

    def on_chunk(rows: slice, ys: list, y_model: Tensor) -> None:
        if keep_outputs:
            model_out.append(y_model)
        batch = data.take(roles[0][rows], cpu_index=roles_np[0][rows]) if metrics else None
        for k, y in enumerate(ys):
            if keep_outputs:
                scrubbed[k].append(y)
            for name, fn in (metrics or {}).items():
                metric_parts[k][name].append(fn(y, y_model, batch).detach())

    was_training = adapter.model.training
    adapter.model.eval()
    try:
        execute(plan, adapter, data, roles, chunk, on_chunk, width=width, cache_mb=cache_mb)
    finally:
        adapter.model.train(was_training)
    model_all = torch.cat(model_out) if keep_outputs else None
    n_h = len(compiled.hypotheses)
    results = [[None] * n_h for _ in seeds]
    for k in range(K):
        s, h = divmod(k, n_h)
        results[s][h] = ScrubResult(
            hypothesis=compiled.hypotheses[h], plan=plan, index=k, seed=seeds[s], reference=ref, roles=roles_np,
            scrubbed=torch.cat(scrubbed[k]) if keep_outputs else None, model=model_all,
            metrics={name: torch.cat(v) for name, v in metric_parts[k].items()})
    return results


def check_seeds(seeds, what: str = "seeds") -> list[int]:
    """Seeds as a list of distinct Python ints. A float would be truncated (0.5 would run as seed 0) and a
    repeated seed repeats the same draws (the spread over seeds would look like zero): both are errors."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        raise HypothesisError(f"{what}={seeds!r}: give a sequence of seeds, e.g. {what}=({seeds},) or "
                              f"{what}=range({seeds}).")
    try:
        seeds = list(seeds)
    except TypeError:
        raise HypothesisError(f"{what} must be a sequence of integers, e.g. (0, 1); got {type(seeds).__name__}.") \
            from None
    if not seeds:
        raise HypothesisError(f"{what} is empty; give at least one seed, e.g. (0,).")
    for s in seeds:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise HypothesisError(f"{what} must be integers; got {type(s).__name__} {s!r}.")
    if len(set(seeds)) != len(seeds):
        twice = sorted({int(s) for s in seeds if seeds.count(s) > 1})
        raise HypothesisError(f"{what} lists seed {twice[0]} more than once; a repeated seed repeats the same "
                              "draws. Give distinct seeds.")
    return [int(s) for s in seeds]


def check_batch_size(batch_size) -> Optional[int]:
    """None (sized to the plan) or a positive int."""
    if batch_size is None:
        return None
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise HypothesisError(f"batch_size={batch_size!r}: give a positive number of reference data per chunk, or "
                              "None to size chunks to the plan.")
    return int(batch_size)


def _concat(pool: Dataset, extra: Dataset) -> Dataset:
    """Pool followed by outside reference data, as one index space."""
    if pool.inputs.shape[1:] != extra.inputs.shape[1:]:
        raise DataError(f"reference data inputs have shape {tuple(extra.inputs.shape[1:])} per datum but the pool "
                        f"has {tuple(pool.inputs.shape[1:])}.")

    def cat(a, b, name):
        if (a is None) != (b is None):
            raise DataError(f"the pool and the reference data must both have, or both lack, column {name!r}.")
        if a is None:
            return None
        if isinstance(a, Tensor):
            return torch.cat([a, b.to(a.device)])
        if isinstance(a, np.ndarray):
            return np.concatenate([a, b])
        return list(a) + list(b)

    if set(pool.fields) != set(extra.fields):
        raise DataError(f"pool fields {sorted(pool.fields)} differ from reference fields {sorted(extra.fields)}.")
    return Dataset(cat(pool.inputs, extra.inputs, "inputs"), cat(pool.labels, extra.labels, "labels"),
                   cat(pool.raw, extra.raw, "raw"), {k: cat(v, extra.fields[k], k) for k, v in pool.fields.items()},
                   f"{pool.name}+{extra.name}")
