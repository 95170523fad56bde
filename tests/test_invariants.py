"""The invariants of docs/scrubbing-semantics.md, as tests."""

import numpy as np
import pytest
import torch

import scrub
from scrub import Dataset
from hypotheses import (Hypothesis, Node, agree, constant, exact, identity, token_at, unconditional)
from metrics import NextTokenLoss, evaluate, random_baseline

from conftest import tiny_tokens, tiny_transformer

MODEL = tiny_transformer(seed=7)
DATA = Dataset(tiny_tokens(n=40, pos=5, seed=8))


def all_paths_exact(model) -> Hypothesis:
    """Claims every direct input of the output and, below each head, every input, all exact."""
    cfg = model.cfg
    kids = [Node("embeds", ["output <- embed", "output <- pos_embed"])]
    for L in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            kids.append(Node(f"h{L}{h}", f"output <- head.{L}.{h}", children=[
                Node(f"h{L}{h}{p}", f".{p}") for p in ("q", "k", "v")]))
        kids.append(Node(f"m{L}", f"output <- mlp.{L}", children=[Node(f"m{L}in", "*")]))
    return Hypothesis(Node("root", children=kids), name="all paths exact")


@pytest.mark.parametrize("policy", ["shared", "independent"])
def test_every_path_exact_equals_model(policy):
    h = all_paths_exact(MODEL)
    h = Hypothesis(h.root, policy=policy)
    r = scrub.run(MODEL, h, DATA, seed=0)
    assert torch.allclose(r.scrubbed, r.model, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(r.model, MODEL(DATA.inputs), atol=1e-6)


def test_exact_root_alone_equals_model_exactly():
    r = scrub.run(MODEL, Hypothesis(Node("root")), DATA, seed=3)
    assert torch.equal(r.scrubbed, r.model)
    ev = evaluate(MODEL, Hypothesis(Node("root")), DATA, NextTokenLoss(mask_field=None))
    assert ev.loss_recovered() == pytest.approx(1.0)
    assert ev.summary()["kl"] == pytest.approx(0.0, abs=1e-7)


def test_unconditional_root_is_the_random_baseline():
    r = scrub.run(MODEL, random_baseline(), DATA, seed=5)
    drawn = r.node_indices()["root"]["x"]
    with torch.no_grad():
        assert torch.allclose(r.scrubbed, MODEL(DATA.inputs[torch.as_tensor(drawn)]), atol=1e-6)
    ev = evaluate(MODEL, random_baseline(), DATA, NextTokenLoss(mask_field=None), seeds=(5,))
    assert torch.equal(ev.scrub_loss, ev.random_loss)
    assert ev.loss_recovered() == pytest.approx(0.0, abs=1e-9)


def test_node_whose_children_claim_nothing_data_dependent_computes_its_site_on_other_inputs():
    """A node whose children claim no data-dependent input computes its site wholly on r_n.

    The child claims head 1.0's query path from the positional embedding, which
    is the same for every datum; so head 1.0 must equal its plain value on r_head."""
    h = Hypothesis(Node("root", children=[
        Node("head", "output <- head.1.0", children=[Node("pos only", ".q <- pos_embed", agree(token_at(0)))])]))
    r = scrub.run(MODEL, h, DATA, seed=2)
    idx = r.node_indices()
    adapter = scrub.adapt(MODEL)
    on_root = adapter.plain(DATA.inputs[torch.as_tensor(idx["root"]["other"])], {("resid", "output"), ("out", "head.1.0")})
    on_head = adapter.plain(DATA.inputs[torch.as_tensor(idx["head"]["other"])], {("out", "head.1.0")})
    resid = on_root[("resid", "output")] - on_root[("out", "head.1.0")] + on_head[("out", "head.1.0")]
    with torch.no_grad():
        expected = MODEL.unembed_logits(resid)
    assert torch.allclose(r.scrubbed, expected, atol=1e-5)
    assert not torch.allclose(r.scrubbed, r.model, atol=1e-2)


def test_constant_feature_behaves_like_unconditional():
    make = lambda s: Hypothesis(Node("root", children=[Node("a", "output <- head.1.1", s)]))  # noqa: E731
    a = scrub.run(MODEL, make(unconditional()), DATA, seed=11)
    b = scrub.run(MODEL, make(agree(constant())), DATA, seed=11)
    assert np.array_equal(a.node_indices()["a"]["x"], b.node_indices()["a"]["x"])
    assert torch.equal(a.scrubbed, b.scrubbed)


def test_injective_feature_behaves_like_exact():
    make = lambda s: Hypothesis(Node("root", children=[Node("a", "output <- head.1.1", s)]))  # noqa: E731
    distinct = Dataset(torch.unique(DATA.inputs, dim=0))
    a = scrub.run(MODEL, make(exact()), distinct, seed=4)
    b = scrub.run(MODEL, make(agree(identity())), distinct, seed=4)
    assert np.array_equal(b.node_indices()["a"]["x"], b.reference)
    assert torch.equal(a.scrubbed, b.scrubbed)


def _three_children(order, names=("a", "b", "c")):
    kids = {
        "a": Node(names[0], "output <- head.1.0", agree(token_at(1)), children=[
            Node(names[0] + "k", ".k <- head.0.1", agree(token_at(2)))]),
        "b": Node(names[1], "output <- mlp.0", agree(token_at(3))),
        "c": Node(names[2], "output <- head.1.1.v", unconditional()),
    }
    return Hypothesis(Node("root", children=[kids[k] for k in order]), policy="independent")


def test_renaming_nodes_and_reordering_children_changes_nothing():
    base = scrub.run(MODEL, _three_children("abc"), DATA, seed=9)
    renamed = scrub.run(MODEL, _three_children("abc", names=("x", "y", "z")), DATA, seed=9)
    reordered = scrub.run(MODEL, _three_children("cab"), DATA, seed=9)
    assert torch.equal(base.scrubbed, renamed.scrubbed)
    assert torch.equal(base.scrubbed, reordered.scrubbed)
    assert np.array_equal(base.node_indices()["a"]["x"], renamed.node_indices()["x"]["x"])


def test_same_seed_same_indices_and_numbers_other_seed_differs():
    h = _three_children("abc")
    one, two, other = (scrub.run(MODEL, h, DATA, seed=s) for s in (1, 1, 2))
    for name, entry in one.node_indices().items():
        for key, value in entry.items():
            if key == "other_edges":
                for edge, idx in value.items():
                    assert np.array_equal(idx, two.node_indices()[name][key][edge])
            else:
                assert np.array_equal(value, two.node_indices()[name][key])
    assert torch.equal(one.scrubbed, two.scrubbed)
    assert not torch.equal(one.scrubbed, other.scrubbed)


def test_reference_draws_are_seeded():
    a = scrub.run(MODEL, Hypothesis(Node("root")), DATA, seed=1, reference=15)
    b = scrub.run(MODEL, Hypothesis(Node("root")), DATA, seed=1, reference=15)
    assert len(a.reference) == 15 and np.array_equal(a.reference, b.reference)
