"""Verdict flags fire on the cases built to trigger them and not otherwise."""

import torch

from hypotheses import Hypothesis, Node
from metrics import DatumCancellation, Evaluation, VerdictRule, rank

N, S = 400, 2


def make_eval(scrub, model, random, kl, random_kl, name="h"):
    t = lambda a: torch.as_tensor(a, dtype=torch.float32).expand(S, N).clone()  # noqa: E731
    return Evaluation(Hypothesis(Node("root"), name=name), "loss", tuple(range(S)), {"loss": t(scrub)},
                      {"loss": t(model)}, {"loss": t(random)}, {"kl": t(kl)}, {"kl": t(random_kl)})


g = torch.Generator().manual_seed(0)
MODEL = 1.0 + 0.3 * torch.rand(N, generator=g)
RANDOM = 4.0 + 0.3 * torch.rand(N, generator=g)
NOISE = 0.02 * torch.randn(N, generator=g)


def test_clean_hypothesis_survives_without_flags():
    v = VerdictRule().judge(make_eval(MODEL + 0.05 + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert v.survives and not v.flags, str(v)


def test_low_loss_recovered_is_rejected_with_the_reason():
    v = VerdictRule().judge(make_eval(MODEL + 1.5 + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert not v.survives and "recovers" in v.reasons[0] and not v.flags


def test_loss_preserved_but_function_changed():
    v = VerdictRule().judge(make_eval(MODEL + NOISE, MODEL, RANDOM, 1.5 + NOISE, 2.0))
    assert not v.survives
    assert "loss preserved but function changed" in v.flags


def test_above_100_percent():
    v = VerdictRule().judge(make_eval(MODEL - 0.8 + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert any(f.startswith("above 100%") for f in v.flags), str(v)
    plain = VerdictRule().judge(make_eval(MODEL + 0.02 + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert not any(f.startswith("above 100%") for f in plain.flags)


def test_datum_level_cancellation():
    swing = torch.where(torch.arange(N) % 2 == 0, 1.5, -0.8)
    swing = swing - swing.mean()  # half the data much worse, half much better, mean change exactly zero
    v = VerdictRule().judge(make_eval(MODEL + swing, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert any(f.startswith("datum-level cancellation") for f in v.flags), str(v)
    # every datum a little worse by the same amount: a real change, not a cancellation
    uniform = VerdictRule().judge(make_eval(MODEL + 0.9 + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0))
    assert not any(f.startswith("datum-level") for f in uniform.flags)


def test_datum_check_thresholds_are_settings():
    swing = torch.where(torch.arange(N) % 2 == 0, 0.8, -0.8)
    ev = make_eval(MODEL + swing, MODEL, RANDOM, 0.01, 2.0)
    assert VerdictRule().judge(ev).flags  # mean absolute change 0.8 >= 0.2 of the gap (about 3)
    strict = VerdictRule(datum_check=DatumCancellation(min_spread=0.5))  # needs 1.5
    assert not strict.judge(ev).flags


def test_no_loss_to_recover():
    v = VerdictRule().judge(make_eval(MODEL, MODEL, MODEL, 0.0, 0.0))
    assert not v.survives and "no loss to recover" in v.flags


def test_ranking_applies_holm():
    evs = [make_eval(MODEL + d + NOISE, MODEL, RANDOM, 0.01 + NOISE.abs(), 2.0, name=f"h{i}")
           for i, d in enumerate([0.05, 0.30, 2.0])]  # loss recovered ~98%, ~90% (borderline), ~35%
    ranking = rank(evs)
    assert [r.evaluation.name for r in ranking.rows] == ["h0", "h1", "h2"]
    assert ranking.rows[0].survives and not ranking.rows[2].survives
    assert ranking.rows[0].p_holm >= ranking.rows[0].p_value
    assert "p (Holm)" in ranking.table()
