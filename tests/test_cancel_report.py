"""The cancel-out report names planted cancelling pairs and stays silent on controls."""

import pytest
import torch
import torch.nn as nn

import scrub
from scrub import Dataset
from hypotheses import Hypothesis, Node
from metrics import MSELoss, cancel_out_report, unexplained_components

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
    assert len(report.pairs) == 1
    pair = report.pairs[0]
    assert {str(pair.a), str(pair.b)} == {"output <- b", "output <- c"}
    assert pair.effect_a.low > 0.5 and pair.effect_b.low > 0.5  # each large alone
    assert abs(pair.joint.value) < 1e-4  # together: nothing (b = c, one shared draw)
    assert "output <- b" in str(report) and "cancelled" in str(report)


def test_control_without_cancellation_reports_nothing():
    adapter, data = setup(False)
    report = cancel_out_report(adapter, ONLY_A_D, data, MSELoss(), seeds=(0, 1))
    assert report.tested_pairs == 1  # b and c are both large, so the pair was tested...
    assert report.pairs == []  # ...and does not cancel
    assert "no cancel-out pairs found" in str(report)


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
