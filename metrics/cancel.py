"""The cancel-out report: sets of unexplained components whose effects are large alone but cancel together.

A hypothesis leaves *components* unexplained: every input edge of a claimed
site that no child claims (`output <- head.1.3`, `output <- head.1.0.k <-
head.0.1`). Restoring one means claiming it exactly on its node's datum.
Effects are measured as output distance to the model (KL, or L2 for regression),
as a difference between two variants run on the same draws:

- `full`: the hypothesis with every component restored (nothing left out);
- scrubbed alone: `full` with one component left out, minus `full`;
- restored alone: the hypothesis minus the hypothesis with one component
  restored (negative when restoring it alone un-cancels a partner that stays
  scrubbed: b(x) - c(r) is further from the model than b(r) - c(r));
- joint of a set S: `full` with all of S left out, minus `full`; for S = all
  components, the hypothesis minus `full`.

A *cancel-out set* S (two or more components) has every member large (lower
95% bound of its scrubbed-alone effect at least `min_effect` of the random
baseline's distance), a small joint effect (the upper 95% bound of joint /
smallest member's effect at most `max_joint`), and is minimal (no subset of
two or more members is small by the same test). Its cancelled amount is the
smallest member's effect minus the joint effect.

The search (cost in variants, each one more output of a stacked pass):

1. effects: `full`, the hypothesis, one variant per component scrubbed alone
   and (if `restored_alone`) one per component restored alone: 2 + n (+ n);
   the scrubbed-alone runs also keep sketches of the outputs;
2. candidates: among the `max_components` largest components, sets of up to
   `max_size` whose output differences are predicted to cancel
   (`metrics.cancel_search`: no variants, a search over a Gram matrix);
3. verification: for each of at most `max_candidates` candidates, the set and
   every subset of two or more members: at most max_candidates * (2^max_size -
   max_size - 1) variants, distinct subsets counted once.

Variants run with seeds stacked, in as few merged plans as fit the output
memory budget; draws are keyed by the claimed paths, so every run shares them
and all differences are paired per datum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import torch

import scrub
from scrub.adapters.base import OUT
from scrub.graph import ModelGraph
from metrics.table import format_table

from hypotheses.nodes import Hypothesis, Node
from hypotheses.paths import ANY_CHAIN, ANY_ONE, SITE, Hop, Path, hops_extend
from hypotheses.samplers import Exact

from metrics.cancel_search import gram, measured_subsets, output_sketch, propose
from metrics.evaluate import default_distance, evaluate_many
from metrics.stats import Estimate, estimate

RESTORED = "(restored) "


@dataclass(frozen=True)
class Component:
    node: str
    path: Path

    def __str__(self) -> str:
        return str(self.path)


def unexplained_components(hypothesis: Hypothesis, graph: ModelGraph) -> list[Component]:
    """Input edges of claimed sites that no child claims. An edge a child claims only in part
    (at some positions, or deeper down) counts as claimed."""
    out = []
    for name, info in hypothesis.infos().items():
        if info.node.is_leaf:
            continue
        child_paths = [q for c in info.node.children for q in hypothesis.infos()[c.name].paths]
        for p in info.paths:
            last = p.last
            if last.kind != SITE or last.site not in graph.by_name:
                continue  # wildcard-ended claims: components are not enumerable by name
            site = graph.site(last.site)
            for port in ([last.port] if last.port else site.ports):
                named = port if len(site.ports) > 1 else None  # single-input sites are written without a port
                for up in graph.upstream(site, port):
                    hops = p.hops[:-1] + (Hop(SITE, last.site, named, last.positions), Hop(SITE, up.name))
                    if not any(_covers(q, hops) for q in child_paths):
                        out.append(Component(name, Path(hops)))
    return out


def _covers(child: Path, component: tuple) -> bool:
    n = len(component) - 1  # index of the upstream hop
    site_hop = component[n - 1]  # the claimed site, with the component's port
    if not hops_extend(child.hops, component[:n - 1] + (replace(site_hop, port=None),)):
        return False  # (a child through any port of the site may continue; its port is checked next)
    port_hop = child.hops[n - 1]
    if port_hop.port not in (None, site_hop.port):
        return False
    nxt = child.hops[n]
    return nxt.kind in (ANY_ONE, ANY_CHAIN) or nxt.site == component[n].site


def with_restored(hypothesis: Hypothesis, components: Sequence[Component], name: str) -> Hypothesis:
    """The hypothesis plus an exact leaf child claiming each component (on its node's datum)."""
    extra: dict[str, list[Node]] = {}
    for c in components:
        extra.setdefault(c.node, []).append(Node(RESTORED + str(c), (str(c),), Exact()))
    return hypothesis.add_children(extra, name=name)


@dataclass(frozen=True)
class CancelSettings:
    """The thresholds and limits of the cancel-out report (Python: `cancel_out_report(..., min_effect=...)`;
    spec files: the `cancel:` mapping)."""

    min_effect: float = 0.1  # large: lower 95% bound of scrubbed-alone >= this share of the random distance
    max_joint: float = 0.25  # small: upper 95% bound of joint / smallest member's effect <= this
    max_size: int = 5  # largest set searched
    max_components: int = 32  # largest components searched among
    max_candidates: int = 12  # predicted sets measured

    def describe(self) -> str:
        return (f"a component is large when the lower 95% bound of its scrubbed-alone effect is at least "
                f"{self.min_effect:.0%} of the random baseline's distance; a set of large components cancels when "
                f"the upper 95% bound of its joint effect over its smallest member's effect is at most "
                f"{self.max_joint:.0%} and no subset of two or more members does; sets of up to {self.max_size} "
                f"among the {self.max_components} largest components, {self.max_candidates} candidates measured")


@dataclass
class ComponentEffect:
    component: Component
    scrubbed_alone: Estimate
    restored_alone: Optional[Estimate]


@dataclass
class CancelSet:
    """A cancel-out set: `components` with their scrubbed-alone `effects`, the `joint` effect of scrubbing
    them together, `ratio` = joint / smallest effect, `cancelled` = smallest effect - joint."""

    components: tuple[Component, ...]
    effects: tuple[Estimate, ...]
    joint: Estimate
    cancelled: Estimate
    ratio: Estimate

    @property
    def names(self) -> frozenset[str]:
        return frozenset(str(c) for c in self.components)

    def __str__(self) -> str:
        return " + ".join(str(c) for c in self.components)


@dataclass
class CancelPair:
    """A size-2 cancel-out set, in the older shape (`CancelReport.pairs`)."""

    a: Component
    b: Component
    effect_a: Estimate
    effect_b: Estimate
    joint: Estimate
    cancelled: Estimate


@dataclass
class SearchCost:
    """What the search did: components, how many were large and searched among, candidates, the subsets
    measured, and the variants run in each phase with their time."""

    components: int = 0
    large: int = 0
    searched: int = 0
    candidates: int = 0
    measured_sets: int = 0
    effect_variants: int = 0
    verify_variants: int = 0
    seconds: float = 0.0

    @property
    def variants(self) -> int:
        return self.effect_variants + self.verify_variants


@dataclass
class CancelReport:
    hypothesis: Hypothesis
    distance: str
    random_distance: float
    joint: Estimate
    components: list[ComponentEffect]
    sets: list[CancelSet]
    settings: CancelSettings = field(default_factory=CancelSettings)
    cost: SearchCost = field(default_factory=SearchCost)
    seeds: tuple[int, ...] = ()
    measured: dict = field(default_factory=dict)  # frozenset of component names -> ratio Estimate

    @property
    def pairs(self) -> list[CancelPair]:
        return [CancelPair(s.components[0], s.components[1], s.effects[0], s.effects[1], s.joint, s.cancelled)
                for s in self.sets if len(s.components) == 2]

    @property
    def tested_pairs(self) -> int:
        return sum(1 for k in self.measured if len(k) == 2)

    def table(self) -> str:
        if not self.sets:
            return "no cancel-out sets found"
        rows = [[str(k), " + ".join(str(c) for c in s.components), ", ".join(str(e) for e in s.effects),
                 str(s.joint), str(s.cancelled)] for k, s in enumerate(self.sets, 1)]
        return format_table(rows, ["#", "cancel-out set", "each alone", "together", "cancelled"])

    def components_table(self) -> str:
        rows = [[str(c.component), str(c.scrubbed_alone), "-" if c.restored_alone is None else str(c.restored_alone)]
                for c in self.components]
        return format_table(rows, ["unexplained component", "scrubbed alone", "restored alone"])

    def __str__(self) -> str:
        if not self.components:
            return f"cancel-out report for {self.hypothesis.name!r}: it leaves no component unexplained"
        head = (f"cancel-out report for {self.hypothesis.name!r} ({self.distance}; random baseline "
                f"{self.random_distance:.3g}); everything left out together: {self.joint}")
        c = self.cost
        tail = (f"{c.large} of {c.components} components large; {c.candidates} candidate sets, {c.measured_sets} "
                f"sets measured; {c.variants} variants")
        return f"{head}\n\n{self.components_table()}\n\n{self.table()}\n({tail})"


def cancel_out_report(model, hypothesis: Hypothesis, data, loss, *, seeds: Sequence[int] = (0,),
                      distance: Optional[str] = None, min_effect: float = 0.1, max_joint: float = 0.25,
                      max_components: int = 32, max_size: int = 5, max_candidates: int = 12,
                      restored_alone: bool = True, random_distance: Optional[float] = None, reference=None,
                      batch_size: Optional[int] = None, reference_seed: Optional[int] = None,
                      settings: Optional[CancelSettings] = None) -> CancelReport:
    """Find the cancel-out sets among the components `hypothesis` leaves unexplained (see the module doc).

    random_distance: the scale "large" is measured against (default: the random
    baseline's distance in this report's own run); pass the evaluation's figure so
    that a page shows one. settings: all thresholds at once (overrides the keywords)."""
    started = time.perf_counter()
    settings = settings or CancelSettings(min_effect, max_joint, max_size, max_components, max_candidates)
    adapter = scrub.adapt(model)
    components = unexplained_components(hypothesis, adapter.graph)
    dist = distance or default_distance(loss)
    cost = SearchCost(components=len(components))
    if not components:  # everything is claimed: nothing is left out, so nothing can cancel
        nothing = Estimate(0.0, 0.0, 0.0)
        return CancelReport(hypothesis, dist, float("nan"), nothing, [], [], settings, cost, tuple(seeds))
    runner = _Runner(adapter, data, loss, dist, dict(seeds=seeds, reference=reference, reference_seed=reference_seed),
                     batch_size)
    full = with_restored(hypothesis, components, "all restored")
    alone = [with_restored(hypothesis, [c for c in components if c != k], f"scrub {k}") for k in components]
    restored = [with_restored(hypothesis, [k], f"restore {k}") for k in components] if restored_alone else []
    sketch = output_sketch(loss, dist)
    evs = runner.run([hypothesis, full, *alone, *restored], sketch)
    cost.effect_variants = len(evs)
    ev_h, ev_full, ev_alone, ev_rest = evs[0], evs[1], evs[2:2 + len(components)], evs[2 + len(components):]
    d = lambda ev: ev.comparisons[dist]  # noqa: E731
    diff = lambda a, b: estimate([d(a), d(b)], lambda x, y: x - y)  # noqa: E731
    own_random = float(ev_h.random_comparisons[dist].mean())
    scale = own_random if random_distance is None else float(random_distance)
    effects = [ComponentEffect(c, diff(a, ev_full), diff(ev_h, r) if restored else None)
               for c, a, r in zip(components, ev_alone, ev_rest or [None] * len(components))]
    large = [i for i, e in enumerate(effects) if e.scrubbed_alone.low >= settings.min_effect * scale]
    cost.large = len(large)
    searched = sorted(large, key=lambda i: -effects[i].scrubbed_alone.value)[:settings.max_components]
    cost.searched = len(searched)
    sketches = [ev_alone[i].extras["sketch"] - ev_full.extras["sketch"] for i in searched]
    candidates = propose(gram(sketches), settings.max_size, settings.max_candidates) if len(searched) >= 2 else []
    cost.candidates = len(candidates)
    to_measure = sorted({tuple(sorted(searched[j] for j in sub)) for cand, _ in candidates
                         for sub in measured_subsets(cand)},
                        key=lambda s: (len(s), s))
    measured: dict[tuple[int, ...], tuple[Estimate, Estimate, Estimate]] = {}
    if to_measure:
        variants = [with_restored(hypothesis, [c for i, c in enumerate(components) if i not in sub],
                                  "scrub " + " + ".join(str(components[i]) for i in sub)) for sub in to_measure]
        sub_evs = runner.run([full, *variants])
        cost.verify_variants = len(sub_evs)
        full2 = sub_evs[0]
        for sub, ev in zip(to_measure, sub_evs[1:]):
            # same role keys and seeds in every run: identical draws, so the values are paired per datum
            arrays = [d(ev), d(full2), *(d(ev_alone[i]) for i in sub)]
            measured[sub] = (diff(ev, full2), estimate(arrays, _ratio), estimate(arrays, _cancelled))
    cost.measured_sets = len(measured)
    small = {sub for sub, (_, ratio, _) in measured.items() if ratio.high <= settings.max_joint}
    sets = [CancelSet(tuple(components[i] for i in sub), tuple(effects[i].scrubbed_alone for i in sub),
                      measured[sub][0], measured[sub][2], measured[sub][1])
            for sub in sorted(small, key=lambda s: (len(s), s))
            if not any(set(other) < set(sub) for other in small)]
    sets.sort(key=lambda s: -s.cancelled.value)
    cost.seconds = time.perf_counter() - started
    names = {sub: frozenset(str(components[i]) for i in sub) for sub in measured}
    return CancelReport(hypothesis, dist, scale, diff(ev_h, ev_full), effects, sets, settings, cost, tuple(seeds),
                        {names[sub]: measured[sub][1] for sub in measured})


def _ratio(joint, full, *alone) -> float:
    smallest = min(a - full for a in alone)
    return (joint - full) / smallest if smallest > 0 else float("inf")


def _cancelled(joint, full, *alone) -> float:
    return min(a - full for a in alone) - (joint - full)


class _Runner:
    """Runs variants with seeds stacked, in as few merged plans as keep each chunk's outputs under
    OUTPUT_BUDGET bytes (a GPT-2 logit tensor is 6 MB per datum at 32 positions): the plain passes are
    repeated once per plan, so small chunks of one plan beat large chunks of several. Only distances are
    computed (the loss is not needed, and over a large vocabulary it costs as much as a variant)."""

    OUTPUT_BUDGET = 2 ** 30

    def __init__(self, adapter, data, loss, dist: str, kw: dict, batch_size: Optional[int]):
        self.adapter, self.data, self.dist, self.kw = adapter, data, dist, kw
        self.loss = _DistancesOnly(loss)
        with torch.inference_mode():
            one = adapter.plain(data.inputs[:1].to(adapter.device), {(OUT, "output")})[(OUT, "output")]
        self.per_datum = one.numel() * one.element_size() * max(1, len(kw["seeds"]))
        self.n_ref = _n_reference(kw["reference"], data)
        self.batch_size = batch_size

    def run(self, hypotheses: list, sketch=None) -> list:
        outputs = (len(hypotheses) + 1) * self.per_datum  # and the random baseline's, per reference datum
        group = len(hypotheses) if outputs <= self.OUTPUT_BUDGET else max(1, self.OUTPUT_BUDGET // self.per_datum - 1)
        batch = self.batch_size or max(1, min(self.n_ref, self.OUTPUT_BUDGET // ((group + 1) * self.per_datum)))
        out = []
        extras = {"sketch": sketch} if sketch else None
        for start in range(0, len(hypotheses), group):
            out += evaluate_many(self.adapter, hypotheses[start:start + group], self.data, self.loss,
                                 distances=(self.dist,), batch_size=batch, check_independent=False,
                                 extras=extras, **self.kw)
        return out


class _DistancesOnly:
    """The loss, as far as distances need it (positions, output dims), with its per-datum value left out."""

    def __init__(self, loss):
        self.inner = loss
        self.name = getattr(loss, "name", "loss")

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    def __call__(self, outputs, batch):
        return torch.zeros(len(batch), device=outputs.device)


def _n_reference(reference, data) -> int:
    if reference is None:
        return len(data)
    if isinstance(reference, (int, np.integer)):
        return int(reference)
    return len(reference)
