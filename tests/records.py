"""Real result records from tiny runs, for report and logging tests."""

import torch
import torch.nn as nn

import scrub
from scrub import Dataset
from scrub.app.report.record import evaluation_record
from hypotheses import Hypothesis, Node
from metrics import MSELoss, NextTokenLoss, VerdictRule, cancel_out_report, evaluate

from conftest import tiny_tokens, tiny_transformer


def transformer_record() -> dict:
    """A two-level hypothesis about a tiny random transformer, with a cancel-out report."""
    model = tiny_transformer(seed=4)
    data = Dataset(tiny_tokens(n=80, pos=4), name="tiny tokens")
    h = Hypothesis(Node("output", children=[Node("head 1.0", "output <- head.1.0", children=[
        Node("keys", ".k"), Node("values from embed", ".v <- embed")])]), name="head 1.0 via keys")
    loss = NextTokenLoss(mask_field=None)
    ev = evaluate(model, h, data, loss, seeds=(0, 1))
    rule = VerdictRule()
    cancel = cancel_out_report(model, h, data, loss, seeds=(0,), max_components=3)
    return evaluation_record(ev, rule.judge(ev), rule, cancel=cancel, model={"kind": "scrub-transformer"},
                             data={"name": data.name, "n_pool": len(data)}, seconds=1.0)


def cancelling_record() -> dict:
    """'Only a' on out = a + b - c with b = c: survives on loss, cancel-out pair (b, c)."""
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)
            with torch.no_grad():
                self.b.weight.mul_(8)

        def forward(self, x):
            return self.a(x) + self.b(x) - self.b(x)

    toy = Toy()
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        data = Dataset(x, labels=toy(x).squeeze(-1), name="toy")
    adapter = scrub.additive(toy, {"a": toy.a, "b": toy.b, "c": (toy.b, -1.0)})
    h = Hypothesis(Node("out", children=[Node("a", "output <- a")]), name="only a")
    ev = evaluate(adapter, h, data, MSELoss(), seeds=(0, 1))
    rule = VerdictRule()
    cancel = cancel_out_report(adapter, h, data, MSELoss(), seeds=(0, 1))
    return evaluation_record(ev, rule.judge(ev), rule, cancel=cancel, model={"kind": "additive"},
                             data={"name": data.name, "n_pool": len(data)}, seconds=0.5)


def ranking_record(second_name: str = "only a") -> dict:
    """A real "scrub.compare/1" record: two hypotheses about out = a(x) + b(x)."""
    from hypotheses import Hypothesis, Node
    from metrics import compare
    from scrub.app.report.record import ranking_record as make

    class Sum(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    model = Sum()
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        data = Dataset(x, labels=model(x).squeeze(-1), name="sum")
    adapter = scrub.additive(model, {"a": model.a, "b": model.b})
    hs = [Hypothesis(Node("out", children=[Node("a", "output <- a"), Node("b", "output <- b")]), name="a and b"),
          Hypothesis(Node("out", children=[Node("a", "output <- a")]), name=second_name)]
    return make(compare(adapter, hs, data, MSELoss(), seeds=(0,)))
