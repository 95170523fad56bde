"""out = a(x) + b(x) - c(x) with b = c: the difference between the two policies is real.

"Only a matters" scrubs b and c. With one shared other-inputs draw r the output
is a(x) + b(r) - c(r) = a(x): everything looks explained. With independent
draws it is a(x) + b(r1) - c(r2), and the missing components show.
"""

import pytest
import torch
import torch.nn as nn

import scrub
from scrub import AdapterError, Dataset
from hypotheses import Hypothesis, Node
from metrics import MSELoss, evaluate

from reference import AdditiveOps, reference_outputs


class Toy(nn.Module):
    def __init__(self, seed=0, d_in=4):
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Linear(d_in, 1)
        self.b = nn.Sequential(nn.Linear(d_in, 16), nn.ReLU(), nn.Linear(16, 1))
        with torch.no_grad():  # b (= c) is large: each alone moves the output a lot
            self.b[2].weight.mul_(8.0)
        self.c = self.b  # b = c: their contributions cancel exactly

    def forward(self, x):
        return self.a(x) + self.b(x) - self.c(x)


def toy_setup(n=400):
    toy = Toy()
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = toy.a(x).squeeze(-1)  # the task: the model is exactly right
    adapter = scrub.additive(toy, {"a": toy.a, "b": toy.b, "c": (toy.c, -1.0)})
    return toy, adapter, Dataset(x, labels=y, name="toy")


def only_a(policy):
    return Hypothesis(Node("out", children=[Node("a", "output <- a")]), name=f"only a ({policy})", policy=policy)


def test_only_a_recovers_everything_under_shared_draws():
    _, adapter, data = toy_setup()
    ev = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(0, 1, 2))
    assert ev.loss_recovered() == pytest.approx(1.0, abs=1e-6)
    assert ev.summary()["l2_logits"] < 1e-5


def test_only_a_is_exposed_by_independent_draws():
    _, adapter, data = toy_setup()
    ev = evaluate(adapter, only_a("independent"), data, MSELoss(), seeds=(0, 1, 2))
    assert ev.loss_recovered() < 0.5  # clearly less: b(r1) - c(r2) is large
    assert ev.summary()["l2_logits"] > 0.1


@pytest.mark.parametrize("policy", ["shared", "independent"])
def test_toy_engine_matches_reference(policy):
    toy, adapter, data = toy_setup(n=50)
    r = scrub.run(adapter, only_a(policy), data, seed=3)
    ops = AdditiveOps({"a": (toy.a, 1.0), "b": (toy.b, 1.0), "c": (toy.c, -1.0)})
    assert torch.allclose(reference_outputs(ops, only_a(policy), data, r), r.scrubbed, atol=1e-6)


def test_scrubbing_b_alone_or_c_alone_changes_the_output_a_lot():
    _, adapter, data = toy_setup()
    for kept in (["a", "c"], ["a", "b"]):
        h = Hypothesis(Node("out", children=[Node(k, f"output <- {k}") for k in kept]))
        assert evaluate(adapter, h, data, MSELoss()).loss_recovered() < 0.5


def test_a_declaration_that_does_not_reproduce_the_model_is_an_error():
    toy, _, data = toy_setup()
    wrong = scrub.additive(toy, {"a": toy.a, "b": toy.b, "c": toy.c})  # forgot the minus sign on c
    with pytest.raises(AdapterError, match="does not reproduce Toy's forward"):
        scrub.run(wrong, only_a("shared"), data)


def test_a_plain_module_needs_a_declaration():
    toy, _, data = toy_setup()
    with pytest.raises(AdapterError, match=r"plain torch module: declare its additive structure"):
        scrub.run(toy, only_a("shared"), data)
