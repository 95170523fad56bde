"""The cancel-out report names planted cancelling sets and stays silent on controls; its search, alone."""

import numpy as np
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import scrub
from scrub import Dataset
from hypotheses import Hypothesis, Node
from metrics import MSELoss, cancel_out_report, unexplained_components
from metrics.cancel_search import gram, measured_subsets, propose

from conftest import tiny_tokens, tiny_transformer


class FourParts(nn.Module):
    """out = a(x) + b(x) - c(x) + d(x); `cancel` makes c = b (planted pair) or an independent net (control)."""

    def __init__(self, cancel: bool, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        mk = lambda: nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))  # noqa: E731
        self.a, self.b, self.d = mk(), mk(), mk()
        self.c = self.b if cancel else mk()
        with torch.no_grad():
            for m in (self.b, self.c):
                m[2].weight.mul_(6.0)

    def forward(self, x):
        return self.a(x) + self.b(x) - self.c(x) + self.d(x)


def setup(cancel: bool):
    model = FourParts(cancel)
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).squeeze(-1)
    adapter = scrub.additive(model, {"a": model.a, "b": model.b, "c": (model.c, -1.0), "d": model.d})
    return adapter, Dataset(x, labels=y)


ONLY_A_D = Hypothesis(Node("out", children=[Node("a", "output <- a"), Node("d", "output <- d")]), name="a and d")


def test_components_are_the_unclaimed_inputs():
    adapter, _ = setup(True)
    names = sorted(str(c) for c in unexplained_components(ONLY_A_D, adapter.graph))
    assert names == ["output <- b", "output <- c"]


def test_planted_pair_is_named_with_effects_and_intervals():
    adapter, data = setup(True)
    report = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0, 1))
    (found,) = report.sets
    assert found.names == {"output <- b", "output <- c"}
    assert all(e.low > 0.5 for e in found.effects)  # each large alone
    assert abs(found.joint.value) < 1e-4  # together: nothing (b = c, one shared draw)
    assert found.cancelled.low > 0.5 and found.ratio.high < 1e-3
    (pair,) = report.pairs  # the size-2 view
    assert {str(pair.a), str(pair.b)} == {"output <- b", "output <- c"} and pair.joint == found.joint
    assert "output <- b + output <- c" in str(report) and "cancelled" in str(report)
    # restoring one half of a cancelling pair alone makes the hypothesis worse: b(x) - c(r) instead of b(r) - c(r)
    assert all(c.restored_alone.high < 0 for c in report.components)
    cost = report.cost
    assert (cost.components, cost.large, cost.candidates, cost.measured_sets) == (2, 2, 1, 1)
    assert cost.effect_variants == 2 + 2 * 2 and cost.verify_variants == 1 + 1


def test_control_without_cancellation_reports_nothing():
    adapter, data = setup(False)
    report = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0, 1))
    assert report.cost.large == 2  # b and c are both large...
    assert report.sets == [] and report.pairs == []  # ...and do not cancel
    assert "no cancel-out sets found" in str(report)


def test_thresholds_decide_and_are_reported():
    adapter, data = setup(True)
    strict = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0,), min_effect=100.0)
    assert strict.cost.large == 0 and strict.sets == []  # nothing is "large" at 100x the random distance
    assert "100" in strict.settings.describe() or "10000%" in strict.settings.describe()
    alone = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0,), restored_alone=False)
    assert all(c.restored_alone is None for c in alone.components) and alone.cost.effect_variants == 2 + 2
    scaled = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0,), random_distance=123.0)
    assert scaled.random_distance == 123.0


# ---------------------------------------------------------------- the search on its own

def planted_vectors(n_parts: int, members: tuple, seed: int) -> list:
    """Difference vectors (1 seed, N data, k) of n_parts components; `members` sum to zero exactly."""
    g = torch.Generator().manual_seed(seed)
    vecs = [torch.randn(1, 200, 6, generator=g) * (1 + i % 3) for i in range(n_parts)]
    vecs[members[-1]] = -sum(vecs[m] for m in members[:-1])
    return vecs


@settings(max_examples=25, deadline=None)
@given(st.integers(6, 14), st.integers(2, 5), st.integers(0, 10_000))
def test_propose_finds_a_planted_set_of_any_size(n_parts, size, seed):
    rng = np.random.default_rng(seed)
    members = tuple(sorted(rng.choice(n_parts, size=size, replace=False).tolist()))
    found = propose(gram(planted_vectors(n_parts, members, seed)), max_size=5, max_candidates=12)
    assert found and found[0][0] == members and found[0][1] < 1e-6
    assert all(not set(members) < set(s) for s, _ in found)  # no superset of it is proposed


def test_propose_proposes_nothing_among_unrelated_parts():
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(1, 500, 6, generator=g) for _ in range(10)]
    assert propose(gram(vecs), max_size=5, max_candidates=12) == []


def test_minimality_is_checked_on_every_subset():
    assert measured_subsets((0, 1, 2)) == [(0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert len(measured_subsets(tuple(range(5)))) == 2 ** 5 - 5 - 1


def test_transformer_components_and_no_pairs_on_a_random_model():
    model = tiny_transformer(seed=4)
    data = Dataset(tiny_tokens(n=60, pos=4))
    from metrics import NextTokenLoss
    h = Hypothesis(Node("out", children=[Node("h", "output <- head.1.0", children=[Node("k", ".k")])]))
    comps = {str(c) for c in unexplained_components(h, scrub.adapt(model).graph)}
    assert "output <- head.1.1" in comps and "output <- head.1.0.q <- head.0.0" in comps
    assert not any(c.startswith("output <- head.1.0.k") for c in comps)
    report = cancel_out_report(model, h, data, NextTokenLoss(mask_field=None), seeds=(0,), max_components=4)
    assert len(report.components) == len(comps)
    assert report.sets == [] and report.cost.searched <= 4


def test_a_child_claiming_every_port_at_a_position_covers_each_ports_edges():
    """`output <- head.1.0@0 <- *@0` claims head 1.0's q, k and v inputs (at position 0): none of their edges
    is an unexplained component, so the restored variants never overlap the child's claim."""
    model = tiny_transformer(seed=4)
    h = Hypothesis(Node("out", children=[Node("h", "output <- head.1.0@0", children=[
        Node("at 0", "output <- head.1.0@0 <- *@0")])]))
    comps = {str(c) for c in unexplained_components(h, scrub.adapt(model).graph)}
    assert "output <- head.1.1" in comps
    assert not any(c.startswith("output <- head.1.0") for c in comps), comps
    from metrics import NextTokenLoss
    report = cancel_out_report(model, h, Dataset(tiny_tokens(n=40, pos=4)), NextTokenLoss(mask_field=None),
                               seeds=(0,), max_components=4)
    assert len(report.components) == len(comps)
