"""The cancel-out report: unexplained components whose effects are large alone but cancel together.

A hypothesis leaves *components* unexplained: every input edge of a claimed
site that no child claims (`output <- head.1.3`, `output <- head.1.0.k <-
head.0.1`). Restoring one means claiming it exactly on its node's datum.
Effects are measured as output distance to the model (KL, or L2 for regression),
as a difference between two variants run on the same draws:

- `full`: the hypothesis with every component restored (nothing left out);
- scrubbed alone: `full` with one component left out, minus `full`;
- restored alone: the hypothesis minus the hypothesis with one component restored;
- joint: the hypothesis minus `full` (everything it leaves out, together);
- a pair: `full` with both left out, minus `full`.

A *cancel-out pair* has both individual effects large (lower 95% bound at
least `min_effect` of the random baseline's distance) and a joint effect small
(at most `max_joint` of the smaller individual effect, with the cancelled
amount's lower bound above zero). Every variant runs in one batched plan per
seed, sharing draws, so differences are paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Optional, Sequence

import scrub
from scrub.graph import ModelGraph
from metrics.table import format_table

from hypotheses.nodes import Hypothesis, Node
from hypotheses.paths import ANY_CHAIN, ANY_ONE, SITE, Hop, Path, hops_extend
from hypotheses.samplers import Exact

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
    if not hops_extend(child.hops, component[:n]):
        return False
    port_hop = child.hops[n - 1]
    if port_hop.port not in (None, component[n - 1].port):
        return False
    nxt = child.hops[n]
    return nxt.kind in (ANY_ONE, ANY_CHAIN) or nxt.site == component[n].site


def with_restored(hypothesis: Hypothesis, components: Sequence[Component], name: str) -> Hypothesis:
    """The hypothesis plus an exact leaf child claiming each component (on its node's datum)."""
    extra: dict[str, list[Node]] = {}
    for c in components:
        extra.setdefault(c.node, []).append(Node(RESTORED + str(c), (str(c),), Exact()))
    return hypothesis.add_children(extra, name=name)


@dataclass
class ComponentEffect:
    component: Component
    scrubbed_alone: Estimate
    restored_alone: Estimate


@dataclass
class CancelPair:
    a: Component
    b: Component
    effect_a: Estimate
    effect_b: Estimate
    joint: Estimate
    cancelled: Estimate  # min(effect_a, effect_b) - joint


@dataclass
class CancelReport:
    hypothesis: Hypothesis
    distance: str
    random_distance: float
    joint: Estimate
    components: list[ComponentEffect]
    pairs: list[CancelPair]
    tested_pairs: int

    def table(self) -> str:
        if not self.pairs:
            return "no cancel-out pairs found"
        rows = [[str(p.a), str(p.b), str(p.effect_a), str(p.effect_b), str(p.joint), str(p.cancelled)]
                for p in self.pairs]
        return format_table(rows, ["component A", "component B", "A alone", "B alone", "together", "cancelled"])

    def components_table(self) -> str:
        rows = [[str(c.component), str(c.scrubbed_alone), str(c.restored_alone)] for c in self.components]
        return format_table(rows, ["unexplained component", "scrubbed alone", "restored alone"])

    def __str__(self) -> str:
        if not self.components:
            return f"cancel-out report for {self.hypothesis.name!r}: it leaves no component unexplained"
        head = (f"cancel-out report for {self.hypothesis.name!r} ({self.distance}; random baseline "
                f"{self.random_distance:.3g}); everything left out together: {self.joint}")
        return f"{head}\n\n{self.components_table()}\n\n{self.table()}  ({self.tested_pairs} pairs tested)"


def cancel_out_report(model, hypothesis: Hypothesis, data, loss, *, seeds: Sequence[int] = (0,),
                      distance: Optional[str] = None, min_effect: float = 0.1, max_joint: float = 0.25,
                      max_components: int = 12, reference=None, batch_size: Optional[int] = None,
                      reference_seed: Optional[int] = None) -> CancelReport:
    """Find cancel-out pairs among the components `hypothesis` leaves unexplained (see module doc).

    Pairs are tested among the `max_components` components with the largest
    individual effects that clear `min_effect`."""
    adapter = scrub.adapt(model)
    components = unexplained_components(hypothesis, adapter.graph)
    dist = distance or default_distance(loss)
    if not components:  # everything is claimed: nothing is left out, so nothing can cancel
        nothing = Estimate(0.0, 0.0, 0.0)
        return CancelReport(hypothesis, dist, float("nan"), nothing, [], [], 0)
    full = with_restored(hypothesis, components, "all restored")
    alone = [with_restored(hypothesis, [c for c in components if c != k], f"scrub {k}") for k in components]
    restored = [with_restored(hypothesis, [k], f"restore {k}") for k in components]
    kw = dict(seeds=seeds, reference=reference, distances=(dist,), batch_size=batch_size,
              reference_seed=reference_seed)
    evs = evaluate_many(adapter, [hypothesis, full, *alone, *restored], data, loss, **kw)
    ev_h, ev_full, ev_alone, ev_rest = evs[0], evs[1], evs[2:2 + len(components)], evs[2 + len(components):]
    d = lambda ev: ev.comparisons[dist]  # noqa: E731
    diff = lambda a, b: estimate([d(a), d(b)], lambda x, y: x - y)  # noqa: E731
    random_distance = float(ev_h.random_comparisons[dist].mean())
    effects = [ComponentEffect(c, diff(a, ev_full), diff(ev_h, r)) for c, a, r in zip(components, ev_alone, ev_rest)]
    large = sorted((e for e in effects if e.scrubbed_alone.low >= min_effect * random_distance),
                   key=lambda e: -e.scrubbed_alone.value)[:max_components]
    pairs: list[CancelPair] = []
    candidates = list(combinations(large, 2))
    if candidates:
        pair_hyps = [with_restored(hypothesis, [c for c in components if c not in (a.component, b.component)],
                                   f"scrub {a.component} + {b.component}") for a, b in candidates]
        pair_evs = evaluate_many(adapter, [hypothesis, full, *pair_hyps], data, loss, **kw)
        full2 = pair_evs[1]
        for (a, b), ev in zip(candidates, pair_evs[2:]):
            joint = diff(ev, full2)
            # same role keys and seeds in both batches: identical draws, so the values are paired per datum
            alone_a, alone_b = (ev_alone[components.index(e.component)] for e in (a, b))
            cancelled = estimate([d(alone_a), d(alone_b), d(ev)], lambda x, y, z: min(x, y) - z)
            if joint.value <= max_joint * min(a.scrubbed_alone.value, b.scrubbed_alone.value) and cancelled.low > 0:
                pairs.append(CancelPair(a.component, b.component, a.scrubbed_alone, b.scrubbed_alone, joint, cancelled))
    pairs.sort(key=lambda p: -p.cancelled.value)
    return CancelReport(hypothesis, dist, random_distance, diff(ev_h, ev_full), effects, pairs, len(candidates))
