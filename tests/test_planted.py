"""Planted circuits with known answers: every verdict, every flag and every cancel-out set.

Each true hypothesis survives, each false one is rejected or flagged; the
independent-draw flag fires on every planted cancellation and on no control;
the cancel-out report names every planted set (sizes 2, 3 and 4) exactly and
nothing on the controls.
"""

import functools

import pytest

from hypotheses.cases import registry
from hypotheses.cases.planted import hypotheses as hyps
from hypotheses.cases.planted import model as models
from metrics import MSELoss, VerdictRule, cancel_out_report, evaluate

RULE = VerdictRule()
toolkit_says = hyps.toolkit_says
CASES = hyps.cancellation_cases()
ENTRIES = [(key, i) for key, (cases, _, _) in CASES.items() for i in range(len(cases()))]
CONTROLS = ("terms-control", "small-extras", "heads-control")


def report_entries():
    """Every entry; the report on hypotheses that neither leave a set out nor are controls runs in CI only."""
    for key, i in ENTRIES:
        keep = bool(CASES[key][0]()[i][2]) or key in CONTROLS
        yield pytest.param(key, i, id=f"{key}-{i}", marks=() if keep else pytest.mark.slow)


@functools.lru_cache(maxsize=None)
def built(key: str):
    return registry.MODELS[f"planted-{key}"](), registry.DATASETS[f"planted-{key}"]()


def entry(key: str, index: int):
    cases, loss, _ = CASES[key]
    h, says, sets = cases()[index]
    model, data = built(key)
    return model, data, loss, h, says, sets


@pytest.mark.parametrize("key,index", ENTRIES, ids=[f"{k}-{i}" for k, i in ENTRIES])
def test_verdict_and_the_independent_draw_flag(key, index):
    model, data, loss, h, says, sets = entry(key, index)
    verdict = RULE.judge(evaluate(model, h, data, loss, seeds=(0, 1)))
    assert toolkit_says(verdict) == says, (h.name, str(verdict))
    # the cancel flag names the cause and where to look, on exactly the survivors that leave a cancel-out set out
    assert verdict.cancels == bool(sets), h.name
    if verdict.cancels:
        assert any(f.startswith("the parts it leaves out cancel; see the cancel-out report") for f in verdict.flags)


@pytest.mark.parametrize("key,index", report_entries())
def test_the_report_names_every_planted_set_exactly(key, index):
    model, data, loss, h, says, sets = entry(key, index)
    report = cancel_out_report(model, h, data, loss, seeds=(0,))
    assert sorted(map(sorted, (s.names for s in report.sets))) == sorted(map(sorted, sets)), (h.name, str(report))
    for s in report.sets:  # each member large alone, together small: the numbers that make it a set
        assert all(e.low >= report.settings.min_effect * report.random_distance for e in s.effects)
        assert s.ratio.high <= report.settings.max_joint and s.cancelled.low > 0


def test_planted_sizes_two_three_and_four_are_all_covered():
    sizes = {len(s) for cases, _, _ in CASES.values() for _, _, sets in cases() for s in sets}
    assert sizes == {2, 3, 4}
    controls = [(says, sets) for key in CONTROLS for _, says, sets in CASES[key][0]()]
    assert not any(sets for _, sets in controls) and {"survives", "rejected"} <= {says for says, _ in controls}


def test_three_way_cancellation_has_no_cancelling_pair():
    """a + u + v - (u + v): the report measures every pair inside the triple, and none of them cancels."""
    model, data, loss, h, _, _ = entry("terms3", 1)
    report = cancel_out_report(model, h, data, loss, seeds=(0,))
    pairs = [k for k in report.measured if len(k) == 2]
    assert len(pairs) == 3 and all(report.measured[k].high > report.settings.max_joint for k in pairs)
    assert report.tested_pairs == 3 and report.pairs == []


@pytest.mark.parametrize("activation", [True, False])
@pytest.mark.parametrize("index", range(3))
def test_xor_and_linear(activation, index):
    h, which, expected = hyps.xor_and_linear(activation)[index]
    adapter, data = models.xor_and_linear(activation)
    loss = MSELoss(dims=(0,) if which == "xor" else (1,))
    verdict = RULE.judge(evaluate(adapter, h, data, loss, seeds=(0, 1)))
    assert toolkit_says(verdict) == expected, (h.name, activation)


@pytest.mark.parametrize("index", range(2))
def test_sine(index):
    h, expected = hyps.sine()[index]
    adapter, data, reference = models.sine()
    verdict = RULE.judge(evaluate(adapter, h, data, MSELoss(), seeds=(0, 1), reference=reference))
    assert toolkit_says(verdict) == expected, h.name
