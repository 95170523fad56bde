"""Verdicts: a stated rule, with flags beside it.

The rule (`VerdictRule`, every threshold a setting):

- a hypothesis **survives** when the lower confidence bound of its loss
  recovered is at least `min_loss_recovered` (default 0.9) and the upper bound
  of its output distance (default KL(model || scrubbed); L2 for regression) is
  at most `max_distance_fraction` (default 0.1) of the random baseline's
  distance, the distance when everything is resampled;
- otherwise it is **rejected**, with the reasons.

Flags, beside the verdict:

- *loss preserved but function changed*: loss recovered clears the bar but the
  output distance does not (the sin-vs-cos failure: right loss, other function);
- *above 100%*: the lower bound of loss recovered exceeds 1, the scrubbed model
  beats the model itself (a sign the metric is being gamed);
- *datum-level cancellation*: the mean change of per-datum loss is small while
  many data got much worse and many much better (see `datum_cancellation`);
- *no loss to recover*: the model is not clearly better than the random
  baseline (the lower bound of their loss gap is below `min_gap` of the random
  loss): loss recovered is then meaningless, and the verdict says so;
- *the parts it leaves out cancel* (`CANCEL_FLAG`): the hypothesis survives,
  but scored with its unexplained inputs drawn independently
  (`metrics.independent`) its output is *far worse*: the lower 95% bound of
  the paired difference (independent-draw distance minus shared-draw
  distance) exceeds `independent_margin` (default 0.1) of the random
  baseline's distance. With the default margin, equal to the distance
  tolerance, the independent-draw score clearly fails the rule by itself. The
  cancel-out report (`metrics.cancel_out_report`) then names the parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scrub.errors import MetricError

from metrics.stats import Estimate, estimate


CANCEL_FLAG = "the parts it leaves out cancel; see the cancel-out report"


@dataclass(frozen=True)
class Verdict:
    status: str  # "survives" or "rejected"
    loss_ok: bool = False
    distance_ok: bool = False
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    loss_recovered: Estimate | None = None
    distance: Estimate | None = None
    independent: Estimate | None = None  # the distance with unexplained inputs drawn independently
    independent_excess: Estimate | None = None  # independent minus shared distance, paired per datum

    @property
    def survives(self) -> bool:
        return self.status == "survives"

    @property
    def cancels(self) -> bool:
        """The independent-draw check says the parts this hypothesis leaves out cancel."""
        return any(f.startswith(CANCEL_FLAG) for f in self.flags)

    def __str__(self) -> str:
        text = self.status if not self.reasons else f"{self.status}: " + "; ".join(self.reasons)
        if self.flags:
            text += " [" + "; ".join(self.flags) + "]"
        return text


@dataclass(frozen=True)
class DatumCancellation:
    """Thresholds for the datum-level cancellation flag, as fractions of the loss gap
    (L_random - L_model): flag when the mean absolute per-datum change is at least
    `min_spread` of the gap, the mean change at most `max_shift` of the mean absolute
    change, and at least `min_share` of data moved by more than `move` of the gap in
    each direction."""

    min_spread: float = 0.2
    max_shift: float = 0.25
    min_share: float = 0.1
    move: float = 0.1

    def check(self, scrub_loss, model_loss, random_loss) -> str | None:
        scrub_loss, model_loss, random_loss = (np.asarray(a.cpu() if hasattr(a, "cpu") else a, dtype=float)
                                               for a in (scrub_loss, model_loss, random_loss))
        delta = scrub_loss.mean(0) - model_loss.mean(0)  # per datum, averaged over seeds
        gap = float(random_loss.mean() - model_loss.mean())
        if not gap > 0:
            return None
        spread, shift = float(np.abs(delta).mean()), float(abs(delta.mean()))
        worse, better = float((delta > self.move * gap).mean()), float((delta < -self.move * gap).mean())
        if spread >= self.min_spread * gap and shift <= self.max_shift * spread and \
                worse >= self.min_share and better >= self.min_share:
            return (f"datum-level cancellation: mean change {delta.mean():+.3g} but mean absolute change "
                    f"{spread:.3g}; {worse:.0%} of data got worse, {better:.0%} better")
        return None


@dataclass(frozen=True)
class VerdictRule:
    min_loss_recovered: float = 0.9
    max_distance_fraction: float = 0.1
    distance: str | None = None  # default: the evaluation's main distance (its loss's default_distance)
    min_gap: float = 0.01  # the model must beat the random baseline by this share of its loss (lower bound)
    independent_margin: float = 0.1  # "far worse": independent minus shared distance, lower bound, / random's
    datum_check: DatumCancellation = field(default_factory=DatumCancellation)

    RANGES = {"min_loss_recovered": (0.0, 1.0, "a fraction of the loss, 0..1 (0.9 is 90%)"),
              "max_distance_fraction": (0.0, 1.0, "a fraction of the random baseline's distance, 0..1"),
              "min_gap": (0.0, 1.0, "a fraction of the random baseline's loss, 0..1"),
              "independent_margin": (0.0, float("inf"), "a share of the random baseline's distance, 0 or more")}

    def __post_init__(self):
        for name, (low, high, what) in self.RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
                raise MetricError(f"VerdictRule {name}={value!r} is out of range: it is {what}.", field=name)
        if self.distance is not None and not isinstance(self.distance, str):
            raise MetricError(f"VerdictRule distance={self.distance!r}: name a distance, e.g. 'kl'.", field="distance")

    def describe(self) -> str:
        return (f"survives if the lower 95% bound of loss recovered >= {self.min_loss_recovered:.0%} and the upper "
                f"bound of the output distance <= {self.max_distance_fraction:.0%} of the random baseline's")

    def distance_for(self, ev) -> str:
        """The distance this rule judges `ev` by: the rule's own, else the evaluation's main distance."""
        return self.distance or ev.main_distance

    def judge(self, ev) -> Verdict:
        """The verdict for an Evaluation."""
        name = self.distance_for(ev)
        lr = ev.estimate("loss_recovered")
        dist = ev.estimate(name) if name in ev.comparisons else None
        random_dist = float(ev.random_comparisons[name].mean()) if name in ev.random_comparisons else None
        reasons, flags = [], []
        gap = estimate([ev.random_loss, ev.model_loss], lambda r, m: r - m)
        if not gap.low > self.min_gap * float(ev.random_loss.mean()) or math.isnan(lr.value):
            return Verdict("rejected", False, False, (
                f"no loss to recover: the model's loss ({float(ev.model_loss.mean()):.4g}) is not clearly below the "
                f"random baseline's ({float(ev.random_loss.mean()):.4g}); there is no behaviour to explain",),
                ("no loss to recover", *getattr(ev, "warnings", ())), lr, dist)
        loss_ok = lr.low >= self.min_loss_recovered
        if not loss_ok:
            reasons.append(f"recovers {lr.value:.1%} of the loss (lower bound {lr.low:.1%} < "
                           f"{self.min_loss_recovered:.0%})")
        dist_ok = True
        if dist is not None and random_dist is not None:
            tol = self.max_distance_fraction * random_dist
            dist_ok = dist.high <= tol
            if not dist_ok:
                reasons.append(f"output {name} {dist.value:.3g} (upper bound {dist.high:.3g}) exceeds "
                               f"{self.max_distance_fraction:.0%} of the random baseline's {random_dist:.3g}")
                if loss_ok:
                    flags.append("loss preserved but function changed")
        if lr.low > 1:
            flags.append(f"above 100%: loss recovered {lr.value:.1%} (lower bound {lr.low:.1%}); the scrubbed "
                         "model beats the model itself, a sign the metric is being gamed")
        datum = self.datum_check.check(ev.scrub_loss, ev.model_loss, ev.random_loss)
        if datum:
            flags.append(datum)
        flags += list(getattr(ev, "warnings", ()))  # e.g. a degenerate feature: recorded beside the verdict
        independent = excess = None
        ind = getattr(ev, "independent", None)
        if ind is not None and name in ind.comparisons and name in ev.comparisons:
            independent = estimate([ind.comparisons[name]])
            excess = estimate([ind.comparisons[name], ev.comparisons[name]], lambda a, b: a - b)
            if loss_ok and dist_ok and random_dist is not None and excess.low > self.independent_margin * random_dist:
                flags.append(f"{CANCEL_FLAG} (with its unexplained inputs drawn independently the output {name} is "
                             f"{independent.value:.3g}, {excess.value:.3g} [{excess.low:.3g}, {excess.high:.3g}] more "
                             f"than with one shared draw; far worse means more than "
                             f"{self.independent_margin:.0%} of the random baseline's {random_dist:.3g})")
        return Verdict("survives" if loss_ok and dist_ok else "rejected", loss_ok, dist_ok, tuple(reasons),
                       tuple(flags), lr, dist, independent, excess)
