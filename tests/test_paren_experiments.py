"""The original paren experiments: features on suffix proportions, the adjusted proportion, phi, and the
published numbers (0a, 0b, 1a, 1b at a reduced size, within 4 standard errors: the original's own check).

The external-model test needs the shared folder (or $SCRUB_PAREN_DIR) and skips where it is absent."""

import numpy as np
import pytest
import torch

import scrub
from hypotheses.cases import paren
from hypotheses.cases.paren import features as F
from hypotheses.cases.paren.hypotheses import EXPERIMENTS, PUBLISHED
from metrics import ClassificationLoss, evaluate_many

STRINGS = ["()", "))", "(((", ")(", "(())", "())(()", "(()"]


def test_tests_read_suffixes_right_to_left():
    t = paren.tokenize(STRINGS)
    assert F.count_test(t).tolist() == [True, False, False, True, True, True, False]
    # no suffix has more opens than closes: '))' passes, '(((' fails (the left-to-right test says the opposite)
    assert F.horizon_test(t).tolist() == [True, True, False, False, True, False, False]
    assert (F.horizon_test(t) & F.count_test(t)).tolist() == [paren.is_balanced(s) for s in STRINGS]
    assert F.count_open(t).tolist() == [True, False, False, False, True, True, False]
    assert F.p1_if_starts_open(t).tolist() == [0.5, -1, 1, -1, 0.5, 0.5, 2 / 3]
    assert F.input_length(t).tolist() == [len(s) + 2 for s in STRINGS]


def test_horizon_classes():
    t = paren.tokenize(["())(()"])  # suffix proportions from position 1: 3/6, 2/5, 2/4, 2/3, 1/2, 0/1
    classes = [int(F.horizon_class(t, i)[0]) for i in range(10)]
    assert classes == [2, 2, 2, 2, -2, 2, 2, 1, 0, 0]  # START takes the whole string's; END after ')' is +1
    assert int(F.horizon_class(paren.tokenize(["(("]), 3)[0]) == -1  # END after '('


def test_adjusted_proportion_is_the_attention_weighted_average_with_exact_ties():
    rng = np.random.default_rng(0)
    masses = (rng.random((43, 42)) + 0.1, rng.random((43, 42)) + 0.1)
    strings = ["".join(rng.choice(["(", ")"], size=n)) for n in rng.integers(1, 21, 50) * 2]
    t = paren.tokenize(strings)
    got = F.adjusted_open_proportion(t, masses)
    for r, s in enumerate(strings):
        L = len(s) + 2
        for q in range(L - 1):  # START and brackets
            before, after = s[:max(q - 1, 0)], s[max(q - 1, 0):]
            a_b = masses[0][L, q] if before else 0.0
            p_b = before.count("(") / len(before) if before else 0.0
            want = (a_b * p_b + masses[1][L, q] * after.count("(") / len(after)) / (a_b + masses[1][L, q])
            if (not before or 2 * before.count("(") == len(before)) and 2 * after.count("(") == len(after):
                assert got[r, q] == 0.5  # a tie is exactly 1/2, whatever the weights
            assert got[r, q] == pytest.approx(want, abs=1e-12)
    assert np.allclose(got[:, :2], F.open_proportion_after(t)[:, :2], atol=1e-12)  # nothing before positions 0, 1


def test_phi_is_v_times_2p_minus_1_from_head_0_0s_weights():
    model = paren.load_model()
    batch = scrub.Dataset(paren.tokenize(["((", "()", "))()"]))
    out = F.phi(batch, model)
    v = F.open_direction(model)
    assert out.shape == (3, 56)
    assert torch.allclose(out, torch.stack([v, 0 * v, -v / 2]), atol=1e-6)
    W = model.blocks[0]
    x = W.ln1(model.embed.W_E[paren.OPEN] + model.pos_embed.W_pos[5])
    ov = (x @ W.attn.W_V[0] + W.attn.b_V[0]) @ W.attn.W_O[0]
    x = W.ln1(model.embed.W_E[paren.CLOSE] + model.pos_embed.W_pos[5])
    ov_close = (x @ W.attn.W_V[0] + W.attn.b_V[0]) @ W.attn.W_O[0]
    assert torch.nn.functional.cosine_similarity(v, ov - ov_close, dim=0) > 0.5  # one position's difference


@pytest.mark.parametrize("name", ["1a", "1b", "2a", "2b", "3a"])
def test_experiments_compile_on_our_model(name):
    """Every experiment is a valid hypothesis about the paren shape (3b and 4 need the external weights)."""
    plan = scrub.compile(paren.load_model(), EXPERIMENTS[name](), paren.make_dataset(200, seed=3)).plan
    assert plan.evals


@pytest.fixture(scope="module")
def external():
    if not paren.external_available():
        pytest.skip(f"shared paren-balancer folder not found at {paren.shared_dir()} (set ${paren.ENV_VAR})")
    return paren.load_external_model(), paren.load_external_data("redwood")


def test_published_numbers_0a_0b_1a_1b(external):
    """Reduced size (600 reference data, one seed); the pool is the whole Redwood set, as in the original."""
    model, data = external
    names = ["0a", "0b", "1a", "1b"]
    evaluations = evaluate_many(model, [EXPERIMENTS[k]() for k in names], data, ClassificationLoss(0), seeds=[7],
                                reference=600, distances=[])
    for name, ev in zip(names, evaluations):
        loss = ev.scrub_loss[0].double()
        target, published_se = PUBLISHED[name]
        se = max(published_se, (loss.std() / len(loss) ** 0.5).item())
        assert abs(loss.mean().item() - target) < 4 * se, (name, loss.mean().item(), target, se)
