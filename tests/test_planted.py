"""Every planted case's true hypothesis survives and every planted false one is rejected or flagged."""

import pytest

from hypotheses.cases.planted import model as models
from hypotheses.cases.planted import hypotheses as hyps
from metrics import MSELoss, NextTokenLoss, VerdictRule, cancel_out_report, evaluate

RULE = VerdictRule()


def toolkit_says(model, h, data, loss, **kw) -> str:
    """survives / rejected / flagged / no loss, from the verdict and, for survivors, the cancel-out report."""
    verdict = RULE.judge(evaluate(model, h, data, loss, seeds=(0, 1), **kw))
    if "no loss to recover" in verdict.flags:
        return "no loss"
    if not verdict.survives:
        return "flagged" if "loss preserved but function changed" in verdict.flags else "rejected"
    report = cancel_out_report(model, h, data, loss, seeds=(0, 1), **kw)
    return "flagged" if report.pairs else "survives"


@pytest.mark.parametrize("index", range(4))
def test_three_terms(index):
    h, expected = hyps.three_terms()[index]
    adapter, data = models.cancelling_terms()
    assert toolkit_says(adapter, h, data, MSELoss()) == expected, h.name


@pytest.mark.parametrize("index", range(4))
def test_cancelling_heads(index):
    h, expected = hyps.cancelling_heads()[index]
    model, data = models.cancelling_heads()
    assert toolkit_says(model, h, data, NextTokenLoss()) == expected, h.name


@pytest.mark.parametrize("activation", [True, False])
@pytest.mark.parametrize("index", range(3))
def test_xor_and_linear(activation, index):
    h, which, expected = hyps.xor_and_linear(activation)[index]
    adapter, data = models.xor_and_linear(activation)
    loss = MSELoss(dims=(0,) if which == "xor" else (1,))
    assert toolkit_says(adapter, h, data, loss) == expected, (h.name, activation)


@pytest.mark.parametrize("index", range(2))
def test_sine(index):
    h, expected = hyps.sine()[index]
    adapter, data, reference = models.sine()
    assert toolkit_says(adapter, h, data, MSELoss(), reference=reference) == expected, h.name


def test_the_cancel_out_report_names_the_planted_heads():
    model, data = models.cancelling_heads()
    report = cancel_out_report(model, hyps.cancelling_heads()[1][0], data, NextTokenLoss(), seeds=(0,))
    assert [{str(p.a), str(p.b)} for p in report.pairs] == [{"output <- head.0.1", "output <- head.0.2"}]
