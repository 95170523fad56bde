"""Per-datum losses: how well outputs predict a datum's label.

A loss maps outputs `(N, pos, out)` and the batch of reference data to one
value per datum. It also says which output positions it reads
(`position_weights`), so output distances compare the positions that matter,
which distance judges it by default (`default_distance`) and which distances
an evaluation reports (`reported_distances`). Each loss reads and writes
itself in spec files (`SETTINGS`: spec key -> attribute) and is registered in
`LOSSES`; a new loss is one class and one registration line
(docs/contributing.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from scrub.data import Dataset
from scrub.errors import MetricError

from hypotheses.registry import Registry, SpecValue

LOSSES: Registry = Registry("loss")
CLASSIFIER_DISTANCES = ("kl", "kl_reverse", "l2_logits", "l2_probs")


class Loss:
    """Base of the built-in losses: spec reading and writing from `SETTINGS`.

    SETTINGS: spec key -> (attribute, type, what): e.g. {"position": ("position", int, "an integer")}."""

    spec_name: ClassVar[str] = ""
    name: str = "loss"
    default_distance: ClassVar[str] = "kl"
    reported_distances: ClassVar[tuple[str, ...]] = CLASSIFIER_DISTANCES
    SETTINGS: ClassVar[dict] = {}

    @classmethod
    def from_spec(cls, spec: SpecValue) -> "Loss":
        if isinstance(spec.value, str):
            return cls()
        settings = spec.at(cls.spec_name)
        if settings.value is None:
            return cls()
        settings.mapping(tuple(cls.SETTINGS), f"the {cls.spec_name} loss's settings")
        kw = {}
        for key, (attr, typ, what) in cls.SETTINGS.items():
            if key in settings.value:
                value = settings.typed(key, typ, what)
                if typ is list and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise settings.error(f"{key} must be {what}.", key)
                kw[attr] = tuple(value) if typ is list else value
        return cls(**kw)

    def positions_read(self) -> Optional[tuple[int, ...]]:
        """The output positions this loss reads, when they are the same for every datum (None: any)."""
        return None

    def to_spec(self) -> Any:
        defaults = {f.name: f.default for f in fields(self)}
        settings = {key: (list(getattr(self, attr)) if typ is list else getattr(self, attr))
                    for key, (attr, typ, _) in self.SETTINGS.items() if getattr(self, attr) != defaults[attr]}
        return {self.spec_name: settings} if settings else self.spec_name


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Mean over positions per datum, weighted; a datum with no counted position is an error."""
    total = weights.sum(-1)
    if (total == 0).any():
        bad = int((total == 0).nonzero()[0])
        raise MetricError(f"datum {bad} of the batch has no position where the loss counts; "
                          "every reference datum needs at least one counted position.")
    return (values * weights).sum(-1) / total


@LOSSES.register("next_token")
@dataclass(frozen=True)
class NextTokenLoss(Loss):
    """Cross-entropy of predicting token t+1 from position t.

    `mask_field` names a dataset field `(N, pos)` whose entry [i, t] is True where
    predicting token t+1 from position t counts; None counts every position but
    the last.
    """

    mask_field: Optional[str] = "loss_mask"
    name: str = "next-token CE"

    SETTINGS: ClassVar[dict] = {"mask": ("mask_field", (str, type(None)), "a dataset field name, or null (every position but the last)")}

    def position_weights(self, batch: Dataset, n_pos: int) -> Tensor:
        if self.mask_field is None:
            w = torch.ones(len(batch), n_pos, device=batch.inputs.device)
            w[:, -1] = 0
            return w
        mask = torch.as_tensor(batch.column(self.mask_field), device=batch.inputs.device)
        if mask.shape != (len(batch), n_pos):
            raise MetricError(f"field {self.mask_field!r} has shape {tuple(mask.shape)}; expected "
                              f"{(len(batch), n_pos)} (one flag per datum and position).")
        if mask[:, -1].any():
            raise MetricError(f"field {self.mask_field!r} counts the last position, which has no next token.")
        return mask.float()

    def per_position(self, outputs: Tensor, batch: Dataset) -> Tensor:
        tokens = batch.inputs
        if outputs.dim() != 3 or outputs.shape[:2] != tokens.shape:
            raise MetricError(f"next-token loss needs logits (N, pos, vocab) matching tokens {tuple(tokens.shape)}; "
                              f"got {tuple(outputs.shape)}.")
        logp = outputs[:, :-1].float().log_softmax(-1)
        nll = -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
        return F.pad(nll, (0, 1))  # the last position predicts nothing

    def __call__(self, outputs: Tensor, batch: Dataset) -> Tensor:
        return _weighted_mean(self.per_position(outputs, batch), self.position_weights(batch, outputs.shape[1]))


@LOSSES.register("classification")
@dataclass(frozen=True)
class ClassificationLoss(Loss):
    """Cross-entropy of the label from the logits at one position (e.g. 0 for the paren balancer)."""

    position: int = 0
    name: str = "classification CE"

    SETTINGS: ClassVar[dict] = {"position": ("position", int, "an integer position")}

    def position_weights(self, batch: Dataset, n_pos: int) -> Tensor:
        w = torch.zeros(len(batch), n_pos, device=batch.inputs.device)
        w[:, self.position] = 1
        return w

    def positions_read(self) -> tuple[int, ...]:
        return (self.position,)

    def __call__(self, outputs: Tensor, batch: Dataset) -> Tensor:
        labels = torch.as_tensor(batch.column("labels"), device=outputs.device).long()
        logits = outputs[:, self.position].float()
        if labels.min() < 0 or labels.max() >= logits.shape[-1]:
            raise MetricError(f"labels range {int(labels.min())}..{int(labels.max())} but the model has "
                              f"{logits.shape[-1]} classes.")
        return F.cross_entropy(logits, labels, reduction="none")


@LOSSES.register("mse")
@dataclass(frozen=True)
class MSELoss(Loss):
    """Squared error of the output at one position against real-valued labels.

    `dims` picks output values (and the same columns of the labels), e.g. (0,) to
    score one head of a two-output regression."""

    position: int = 0
    dims: Optional[tuple[int, ...]] = None
    name: str = "MSE"

    default_distance: ClassVar[str] = "l2_logits"  # regression outputs are not distributions
    reported_distances: ClassVar[tuple[str, ...]] = ("l2_logits",)
    SETTINGS: ClassVar[dict] = {"position": ("position", int, "an integer position"),
                                "dims": ("dims", list, "a list of output indices")}

    def position_weights(self, batch: Dataset, n_pos: int) -> Tensor:
        return ClassificationLoss(self.position).position_weights(batch, n_pos)

    def positions_read(self) -> tuple[int, ...]:
        return (self.position,)

    def __call__(self, outputs: Tensor, batch: Dataset) -> Tensor:
        pred = outputs[:, self.position].float()
        target = torch.as_tensor(batch.column("labels"), device=outputs.device).float().reshape(len(pred), -1)
        if self.dims is not None:
            pred, target = pred[:, list(self.dims)], target[:, list(self.dims)]
        if target.shape[-1] != pred.shape[-1]:
            raise MetricError(f"MSE: outputs have {pred.shape[-1]} values per datum but labels have "
                              f"{target.shape[-1]}.")
        return ((pred - target) ** 2).mean(-1)
