"""Interchange-intervention accuracy: does the model fail the way the interpretation says?

For a hypothesis whose interpretation graph computes the task output (e.g.
"balanced = counts match AND never negative"), each node's datum is drawn
*unconditionally* (an interchange: the node sees another input's feature
value, agreeing or not with the reference datum), the model is scrubbed, and the
interpretation predicts the output from the feature values of the data each
node actually received. IIA is the share of (seed, datum) pairs where the
scrubbed model's prediction equals the interpretation's. Scrubbing with the
hypothesis' own agreement samplers tests that the model succeeds; interchanges
test that it fails as predicted when the features disagree.

    iia = interchange_accuracy(model, h, data, predict=lambda v: v["counts"] & v["never negative"])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

import scrub
from scrub.errors import HypothesisError

from hypotheses.features import Feature
from hypotheses.nodes import Hypothesis

from metrics.stats import Estimate, estimate


@dataclass
class IIAResult:
    hypothesis: str
    accuracy: Estimate  # share of interchanges where the scrubbed model follows the interpretation
    changed_share: float  # share where the interpretation's prediction differs from the reference label
    accuracy_when_changed: Optional[Estimate]  # IIA on those (the informative cases)

    def __str__(self) -> str:
        changed = "" if self.accuracy_when_changed is None else (
            f"; {self.changed_share:.0%} of interchanges change the predicted output, IIA on those "
            f"{self.accuracy_when_changed.percent()}")
        return f"interchange-intervention accuracy of {self.hypothesis!r}: {self.accuracy.percent()}{changed}"


def interchange_accuracy(model, hypothesis: Hypothesis, data, predict: Callable[[Mapping[str, np.ndarray]], object],
                         *, position: int = 0, features: Optional[Mapping[str, Feature]] = None,
                         seeds: Sequence[int] = (0,), reference=None, interchange: bool = True) -> IIAResult:
    """IIA of `hypothesis` (see module doc).

    predict: maps {node name: feature value per reference datum} to the predicted
        class per reference datum. Nodes sampling by agreement provide their
        feature; `features` supplies or overrides features for other nodes.
    position: where the model's class logits are read.
    interchange: draw agreement nodes unconditionally (True) or keep their samplers."""
    feats = {n.name: n.sampler.agreement_feature for n in hypothesis if n.sampler.agreement_feature is not None}
    feats.update(features or {})
    if not feats:
        raise HypothesisError(f"hypothesis {hypothesis.name!r} has no features to predict from: give its nodes "
                              "agree(feature) samplers or pass features={node: feature}.")
    unknown = set(feats) - {n.name for n in hypothesis}
    if unknown:
        raise HypothesisError(f"features given for unknown nodes {sorted(unknown)}.")
    run_h = hypothesis.map(lambda n: replace(n, sampler=n.sampler.unconditioned())) if interchange else hypothesis
    raw = {name: f.raw_values(data) for name, f in feats.items()}
    hits, changed = [], []
    labels = np.asarray(data.column("labels").cpu() if torch.is_tensor(data.labels) else data.column("labels"))
    for seed in seeds:
        res = scrub.run(model, run_h, data, seed=seed, reference=reference, keep_outputs=False,
                        metrics={"pred": lambda ys, ym, b: ys[:, position].argmax(-1).float()})
        idx = res.node_indices()
        values = {name: _take(v, idx[name]["x"]) for name, v in raw.items()}
        predicted = np.asarray(predict(values)).astype(np.int64).reshape(-1)
        model_pred = res.metrics["pred"].cpu().numpy().astype(np.int64)
        hits.append(predicted == model_pred)
        changed.append(predicted != labels[res.reference])
    hits_a, changed_a = np.stack(hits).astype(float), np.stack(changed)
    acc = estimate([hits_a])
    share = float(changed_a.mean())
    when = None
    keep = changed_a.any(0)  # data whose predicted output changed under at least one seed
    if keep.sum() > 1:
        per_datum = (hits_a * changed_a)[:, keep].sum(0) / changed_a[:, keep].sum(0)
        when = estimate([per_datum[None, :]])
    return IIAResult(hypothesis.name, acc, share, when)


def _take(values, idx: np.ndarray) -> np.ndarray:
    if torch.is_tensor(values):
        return values.detach().cpu().numpy()[idx]
    return np.asarray(values, dtype=object if isinstance(values, list) else None)[idx]
