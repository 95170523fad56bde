"""Datasets: the finite list D that scrubbing samples from.

A datum is a model input plus what metrics and features need. Columns are
stored batched (one tensor or list per column) so features and metrics run
vectorised; `raw` keeps the original objects (e.g. bracket strings) for
features written as plain Python functions of the datum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from scrub.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Columns of equal length N.

    inputs: the model input, `(N, ...)` (token ids `(N, pos)` for transformers).
    labels: optional targets, `(N,)` for classification/regression.
    raw:    optional original objects, one per datum (strings, dicts, ...).
    fields: optional extra columns (tensors or arrays with first dim N),
            e.g. a `loss_mask` `(N, pos)` saying where next-token loss counts.
    name:   shown in reports and errors.
    """

    inputs: Tensor
    labels: Optional[Tensor] = None
    raw: Optional[Sequence[Any]] = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    name: str = "dataset"

    def __post_init__(self):
        if not isinstance(self.inputs, Tensor):
            raise DataError(f"{self.name}: inputs must be a torch.Tensor, got {type(self.inputs).__name__}.")
        n = len(self.inputs)
        if n == 0:
            raise DataError(f"{self.name}: the dataset is empty; scrubbing needs at least one datum.")
        for col, value in (("labels", self.labels), ("raw", self.raw), *self.fields.items()):
            if value is not None and len(value) != n:
                raise DataError(f"{self.name}: column {col!r} has {len(value)} entries but inputs has {n}; "
                                "every column needs one entry per datum.")

    def __len__(self) -> int:
        return len(self.inputs)

    def column(self, name: str) -> Any:
        """A column by name: 'inputs', 'labels', 'raw' or a key of `fields`."""
        if name == "inputs":
            return self.inputs
        if name in ("labels", "raw"):
            value = getattr(self, name)
            if value is None:
                known = ["inputs"] + [c for c in ("labels", "raw") if getattr(self, c) is not None] + list(self.fields)
                raise DataError(f"dataset {self.name!r} has no {name!r} column (it has {', '.join(known)}); use data "
                                f"with {name}, or a loss and metrics that do not need them. (From Python: "
                                f"Dataset(..., {name}=...).)")
            return value
        if name in self.fields:
            return self.fields[name]
        from scrub.errors import did_you_mean

        known = ["inputs"] + [c for c in ("labels", "raw") if getattr(self, c) is not None] + list(self.fields)
        raise DataError(f"{self.name} has no column {name!r}; it has {known}.{did_you_mean(name, known)}")

    def take(self, index: Tensor | np.ndarray | Sequence[int], cpu_index: Optional[np.ndarray] = None) -> "Dataset":
        """The sub-dataset at these indices (with repetition), same columns.

        Tensor columns are indexed on their own device; pass `cpu_index` (the same
        indices as a numpy array) to index the Python `raw` column without moving
        `index` off the device."""
        if isinstance(index, Tensor):
            idx = index.long()
            host = cpu_index if cpu_index is not None else None
        else:
            host = np.asarray(index, dtype=np.int64)
            idx = torch.as_tensor(host)
        if host is None:
            host = idx.cpu().numpy() if self.raw is not None or any(
                isinstance(c, np.ndarray) or (c is not None and not isinstance(c, Tensor))
                for c in self.fields.values()) else None

        def pick(col):
            if col is None:
                return None
            if isinstance(col, Tensor):
                return col[idx.to(col.device)]
            if isinstance(col, np.ndarray):
                return col[host]
            return [col[i] for i in host.tolist()]

        return Dataset(pick(self.inputs), pick(self.labels), pick(self.raw),
                       {k: pick(v) for k, v in self.fields.items()}, self.name)

    def to(self, device: str | torch.device) -> "Dataset":
        move = lambda c: c.to(device) if isinstance(c, Tensor) else c  # noqa: E731
        return Dataset(move(self.inputs), move(self.labels), self.raw,
                       {k: move(v) for k, v in self.fields.items()}, self.name)
