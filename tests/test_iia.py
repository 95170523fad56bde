"""Interchange-intervention accuracy: a true interpretation predicts how the model fails, a false one does not."""

import itertools

import pytest
import torch
import torch.nn as nn

import scrub
from scrub import Dataset, HypothesisError
from hypotheses import Hypothesis, Node, agree, from_datum
from metrics import interchange_accuracy


class BitModel(nn.Module):
    """Two-class logits: `a` reads bit 0 and decides the class; `b` adds a small push from bit 1."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)
        with torch.no_grad():
            self.a.weight.copy_(torch.tensor([[-4.0, 0.0], [4.0, 0.0]]))
            self.a.bias.copy_(torch.tensor([2.0, -2.0]))
            self.b.weight.copy_(torch.tensor([[0.0, 0.5], [0.0, -0.5]]))
            self.b.bias.zero_()

    def forward(self, x):
        return self.a(x) + self.b(x)


def setup():
    bits = list(itertools.product([0, 1], repeat=2)) * 50
    x = torch.tensor(bits, dtype=torch.float32)
    model = BitModel()
    data = Dataset(x, labels=x[:, 0].long(), raw=bits)
    return scrub.additive(model, {"a": model.a, "b": model.b}), data


def claim_a(bit: int) -> Hypothesis:
    feature = from_datum(lambda t: t[bit], name=f"bit{bit}")
    return Hypothesis(Node("out", children=[Node("decider", "output <- a", agree(feature))]), name=f"a reads bit {bit}")


def test_true_interpretation_predicts_the_model_under_interchange():
    adapter, data = setup()
    result = interchange_accuracy(adapter, claim_a(0), data, predict=lambda v: v["decider"], seeds=(0, 1))
    assert result.accuracy.value == pytest.approx(1.0)
    assert 0.3 < result.changed_share < 0.7  # interchanges really change the predicted class
    assert result.accuracy_when_changed.value == pytest.approx(1.0)


def test_false_interpretation_fails_under_interchange():
    adapter, data = setup()
    result = interchange_accuracy(adapter, claim_a(1), data, predict=lambda v: v["decider"], seeds=(0, 1))
    assert result.accuracy.high < 0.65  # about chance
    assert "interchange-intervention accuracy" in str(result)


def test_without_interchange_both_look_fine_on_the_reference_labels():
    """With the hypothesis' own agreement sampler the node's datum shares its feature value, so the
    predicted class never changes: that tests that the model succeeds, not how it fails."""
    adapter, data = setup()
    own = interchange_accuracy(adapter, claim_a(0), data, predict=lambda v: v["decider"], interchange=False)
    assert own.accuracy.value == pytest.approx(1.0)
    assert own.changed_share == 0.0


def test_needs_features():
    adapter, data = setup()
    h = Hypothesis(Node("out", children=[Node("decider", "output <- a")]))
    with pytest.raises(HypothesisError, match="has no features to predict from"):
        interchange_accuracy(adapter, h, data, predict=lambda v: v)
