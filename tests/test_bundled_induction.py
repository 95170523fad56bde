"""The bundled induction model: its data generator and its committed checkpoint."""

import math

import pytest
import torch
import torch.nn.functional as F

import scrub
from hypotheses.cases import induction
from hypotheses.cases.induction.model import make_dataset, make_sequences


def test_generator_is_deterministic_in_seed():
    a, b, c = make_sequences(64, seed=3), make_sequences(64, seed=3), make_sequences(64, seed=4)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a.tokens, c.tokens)


def test_segments_vary_in_length_and_offset():
    s = make_sequences(2000, seed=0)
    lo, hi = induction.SEG_LEN
    assert set(s.seg_len.tolist()) == set(range(lo, hi + 1))
    assert s.first_start.unique().numel() > 10
    assert (s.second_start - s.first_start).unique().numel() > 10
    assert (s.tokens[:, 0] == induction.BOS).all()
    assert ((s.tokens[:, 1:] >= 1) & (s.tokens[:, 1:] < induction.D_VOCAB)).all()


def test_mask_marks_exactly_the_copyable_positions():
    s = make_sequences(50, seed=1)
    for i in range(50):
        toks, L = s.tokens[i].tolist(), int(s.seg_len[i])
        s1, s2 = int(s.first_start[i]), int(s.second_start[i])
        assert 1 <= s1 and s1 + L <= s2 and s2 + L <= len(toks)
        seg = toks[s1:s1 + L]
        assert toks[s2:s2 + L] == seg and len(set(seg)) == L  # repeated, distinct tokens
        # segment tokens occur nowhere else, so inside the repeat the earlier occurrence is unique
        assert all(toks.count(tok) == 2 for tok in seg)
        expected = [s2 <= t <= s2 + L - 2 for t in range(len(toks))]
        assert s.induction_mask[i].tolist() == expected
        for t in range(len(toks)):
            src = int(s.induction_source[i, t])
            if expected[t]:
                earlier = [j for j in range(t) if toks[j] == toks[t]]
                assert earlier == [src - 1] and toks[src] == toks[t + 1]
            else:
                assert src == -1


def test_dataset_columns():
    data = make_dataset(n=20, seed=0)
    assert isinstance(data, scrub.Dataset) and len(data) == 20 and data.name == "induction"
    loss_mask, ind = data.column("loss_mask"), data.column("induction_mask")
    assert loss_mask.shape == ind.shape == data.inputs.shape
    assert loss_mask[:, :-1].all() and not loss_mask[:, -1].any()
    assert not (ind & ~loss_mask).any()


@pytest.fixture(scope="module")
def model():
    return induction.load_model()


def test_checkpoint_is_attention_only_and_small(model):
    cfg = model.cfg
    assert cfg.attn_only and cfg.n_layers == 2 and cfg.attention_dir == "causal"
    assert cfg.d_vocab == induction.D_VOCAB and cfg.n_ctx >= induction.SEQ_LEN
    assert induction.CHECKPOINT.stat().st_size < 1_000_000


def test_checkpoint_does_induction_on_fresh_data(model):
    s = make_sequences(500, seed=987_654)
    with torch.no_grad():
        logits = model(s.tokens)[:, :-1]
    losses = F.cross_entropy(logits.transpose(1, 2), s.tokens[:, 1:], reduction="none")
    ind = s.induction_mask[:, :-1]
    loss_ind, loss_other = losses[ind].mean().item(), losses[~ind].mean().item()
    assert loss_ind < 1.0, loss_ind
    assert loss_ind < math.log(model.cfg.d_vocab) - 2 and loss_ind < loss_other - 2


def test_roles_name_existing_heads_that_behave_as_labelled(model):
    roles = induction.heads(model)
    assert roles["previous_token"] and roles["induction"]
    graph = scrub.adapt(model).graph
    for names in roles.values():
        for name in names:
            graph.site(name)  # raises SiteError if the head does not exist
    assert all(n.startswith("head.0.") for n in roles["previous_token"])
    assert all(n.startswith("head.1.") for n in roles["induction"])

    s = make_sequences(300, seed=55)
    _, cache = model.run_with_cache(s.tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    b, t = s.induction_mask.nonzero(as_tuple=True)
    p1 = cache["blocks.1.attn.hook_pattern"]
    for name in roles["induction"]:
        h = int(name.split(".")[2])
        assert p1[b, h, t, s.induction_source[b, t]].mean() > 0.5, name
    p0 = cache["blocks.0.attn.hook_pattern"]
    for name in roles["previous_token"]:
        h = int(name.split(".")[2])
        assert p0[:, h].diagonal(offset=-1, dim1=-2, dim2=-1).mean() > 0.4, name
