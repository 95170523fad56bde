"""Every built-in metric against a hand computation."""

import math

import pytest
import torch

from scrub import Dataset, MetricError
from metrics import (ClassificationLoss, MSELoss, NextTokenLoss, kl_model_to_scrub, kl_scrub_to_model, l2_logits,
                     l2_probs, loss_recovered)


def test_next_token_loss_by_hand():
    # vocab 2, one datum, tokens [0, 1, 1]; logits at positions 0 and 1 predict tokens 1 and 1
    tokens = torch.tensor([[0, 1, 1]])
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])
    batch = Dataset(tokens, fields={"loss_mask": mask})
    nll0 = math.log(2)  # uniform over 2
    nll1 = -math.log(math.exp(0) / (math.exp(2) + math.exp(0)))
    assert NextTokenLoss()(logits, batch).item() == pytest.approx((nll0 + nll1) / 2, rel=1e-6)
    only_first = Dataset(tokens, fields={"loss_mask": torch.tensor([[True, False, False]])})
    assert NextTokenLoss()(logits, only_first).item() == pytest.approx(nll0, rel=1e-6)


def test_next_token_loss_rejects_counting_the_last_position():
    batch = Dataset(torch.tensor([[0, 1]]), fields={"loss_mask": torch.tensor([[True, True]])})
    with pytest.raises(MetricError, match="counts the last position"):
        NextTokenLoss()(torch.zeros(1, 2, 2), batch)


def test_classification_loss_by_hand():
    logits = torch.tensor([[[1.0, 3.0], [9.0, 9.0]], [[0.0, 0.0], [9.0, 9.0]]])  # read at position 0
    batch = Dataset(torch.zeros(2, 2, dtype=torch.long), labels=torch.tensor([1, 0]))
    expected = [-math.log(math.exp(3) / (math.exp(1) + math.exp(3))), math.log(2)]
    assert ClassificationLoss(0)(logits, batch).tolist() == pytest.approx(expected, rel=1e-6)


def test_mse_by_hand():
    out = torch.tensor([[[1.0]], [[3.0]]])
    batch = Dataset(torch.zeros(2, 1), labels=torch.tensor([0.0, 1.0]))
    assert MSELoss()(out, batch).tolist() == pytest.approx([1.0, 4.0])


def test_kl_both_directions_by_hand():
    p = torch.tensor([0.5, 0.5]).log()
    q = torch.tensor([0.9, 0.1]).log()
    model, scrubbed = p.reshape(1, 1, 2), q.reshape(1, 1, 2)
    w = torch.ones(1, 1)
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert kl_model_to_scrub(scrubbed, model, w).item() == pytest.approx(kl_pq, rel=1e-5)
    assert kl_scrub_to_model(scrubbed, model, w).item() == pytest.approx(kl_qp, rel=1e-5)


def test_l2_distances_by_hand():
    a = torch.tensor([[[0.0, 0.0]]])
    b = torch.tensor([[[3.0, 4.0]]])
    w = torch.ones(1, 1)
    assert l2_logits(a, b, w).item() == pytest.approx(5.0)
    pb = torch.tensor([math.exp(3), math.exp(4)]) / (math.exp(3) + math.exp(4))
    assert l2_probs(a, b, w).item() == pytest.approx(((pb - 0.5) ** 2).sum().sqrt().item(), rel=1e-5)


def test_distances_average_over_weighted_positions():
    a = torch.zeros(1, 2, 1)
    b = torch.tensor([[[2.0], [10.0]]])
    assert l2_logits(a, b, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(2.0)
    assert l2_logits(a, b, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(6.0)


def test_loss_recovered_is_reported_as_it_is():
    assert loss_recovered(4.0, 1.0, 0.0) == pytest.approx(0.75)
    assert loss_recovered(4.0, 5.0, 0.0) == pytest.approx(-0.25)  # worse than random: negative, not clipped
    assert loss_recovered(4.0, -1.0, 0.0) == pytest.approx(1.25)  # better than the model: above 1
    assert math.isnan(loss_recovered(2.0, 1.0, 2.0))  # nothing to recover


def test_accuracy_logit_diff_and_agreement_by_hand():
    from metrics import accuracy, agreement, logit_diff

    out = torch.tensor([[[0.0, 2.0, 1.0]], [[3.0, 0.0, 1.0]]])  # 2 data, 1 position, 3 classes
    model = torch.tensor([[[0.0, 2.0, 1.0]], [[0.0, 0.0, 1.0]]])
    batch = Dataset(torch.zeros(2, 1, dtype=torch.long), labels=torch.tensor([1, 2]),
                    fields={"right": torch.tensor([1, 2]), "wrong": torch.tensor([2, 0])})
    assert accuracy(0)(out, batch).tolist() == [1.0, 0.0]
    assert logit_diff(1, 2, position=0)(out, batch).tolist() == [1.0, -1.0]
    assert logit_diff("right", "wrong", position=0)(out, batch).tolist() == [1.0, -2.0]
    assert agreement(0)(out, model, batch).tolist() == [1.0, 0.0]


def test_custom_metrics_flow_through_evaluate():
    from conftest import tiny_tokens, tiny_transformer
    from hypotheses import Hypothesis, Node
    from metrics import ComparisonMetric, OutputMetric, evaluate

    model = tiny_transformer()
    data = Dataset(tiny_tokens(n=30, pos=4))
    top = OutputMetric("top logit", lambda out, b: out[:, -1].max(-1).values)
    same = ComparisonMetric("same argmax", lambda ys, ym, b: (ys[:, -1].argmax(-1) == ym[:, -1].argmax(-1)).float())
    ev = evaluate(model, Hypothesis(Node("root")), data, NextTokenLoss(mask_field=None), metrics=[top, same])
    assert ev.estimate("same argmax").value == 1.0  # the exact hypothesis is the model
    assert ev.estimate("top logit_recovered").value == pytest.approx(1.0)


def test_a_metric_returning_the_wrong_shape_is_named():
    from metrics import OutputMetric

    bad = OutputMetric("bad", lambda out, b: out.sum())
    with pytest.raises(MetricError, match=r"metric 'bad' must return one value per datum"):
        bad(torch.zeros(3, 2, 2), Dataset(torch.zeros(3, 2, dtype=torch.long)))
