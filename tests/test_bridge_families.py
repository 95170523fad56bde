"""Bridges of every family: graphs that state the architecture, heads of one key/value group kept independent,
errors that explain, and refusal of what scrub cannot treat exactly."""

import types

import pytest
import torch

import bridge_models
import scrub
from hypotheses import Hypothesis, Node
from scrub import AdapterError, Dataset, SiteError
from scrub.adapters.base import SiteRequest
from scrub.adapters.bridge import BridgeAdapter, _FACTS, _query_blocks
from scrub.adapters.bridge_layout import read_layout

DATA = Dataset(torch.randint(6, 10, (6, 5), generator=torch.Generator().manual_seed(0)))


def _adapter(family):
    return scrub.adapt(bridge_models.bridge(family))


@pytest.mark.parametrize("family, expected", [
    ("gpt2", {"pos_embed": True, "parallel": False, "attn": False, "kv": 4}),
    ("neox", {"pos_embed": False, "parallel": True, "attn": False, "kv": 4}),
    ("gptj", {"pos_embed": False, "parallel": True, "attn": False, "kv": 4}),
    ("llama_gqa", {"pos_embed": False, "parallel": False, "attn": False, "kv": 2}),
    ("llama_mqa", {"pos_embed": False, "parallel": False, "attn": False, "kv": 1}),
    ("gemma2", {"pos_embed": False, "parallel": False, "attn": True, "kv": 2}),
    ("olmo2", {"pos_embed": False, "parallel": False, "attn": True, "kv": 4}),
])
def test_the_graph_states_the_architecture(family, expected):
    a = _adapter(family)
    g = a.graph
    assert ("pos_embed" in g.by_name) == expected["pos_embed"]
    assert ("attn.0" in g.by_name) == expected["attn"]
    assert a.layout.n_kv_heads == expected["kv"]
    mlp1 = g.site("mlp.1")
    assert (mlp1.stage == g.site("head.1.0").stage) == expected["parallel"]
    reads = {u.name for u in g.upstream(mlp1, "in")}
    assert ("head.1.0" in reads) == (not expected["parallel"] and not expected["attn"])
    assert ("attn.1" in reads) == (expected["attn"] and not expected["parallel"])


def test_mistakes_about_the_architecture_are_explained():
    def compile_on(family, path):
        return scrub.compile(bridge_models.bridge(family), Hypothesis(Node("root", children=[Node("a", path)])),
                             DATA)

    with pytest.raises(SiteError, match=r"head\.1\.0 is not an input of output: its output goes into attn\.1.*"
                                        r"'output <- attn\.1 <- head\.1\.0'"):
        compile_on("gemma2", "output <- head.1.0")
    with pytest.raises(SiteError, match=r"head\.1\.0 is not an input of mlp\.1"):
        compile_on("neox", "output <- mlp.1 <- head.1.0")
    with pytest.raises(SiteError, match="positions act inside attention"):
        compile_on("llama_gqa", "output <- pos_embed")
    compile_on("gemma2", "output <- attn.1 <- head.1.0")
    compile_on("neox", "output <- mlp.1 <- head.0.0")


def test_heads_of_one_key_value_group_keep_their_own_keys():
    """Two heads of one KV group with different key inputs in one call give what each gives alone: a claim on
    head.L.H.k never patches the keys another head of the group sees."""
    a = _adapter("llama_gqa")
    g = torch.Generator().manual_seed(1)
    q, k0, k1, v = (torch.randn(3, 5, 32, generator=g) for _ in range(4))
    h0, h1, h2 = (a.graph.site(f"head.1.{h}") for h in (0, 1, 2))
    with torch.inference_mode():
        together = a.evaluate([SiteRequest(h0, {"q": q, "k": k0, "v": v}), SiteRequest(h1, {"q": q, "k": k1, "v": v}),
                               SiteRequest(h2, {"q": q, "k": k1, "v": v})])
        alone = [a.evaluate([SiteRequest(s, {"q": q, "k": k, "v": v})])[0] for s, k in ((h0, k0), (h1, k1), (h2, k1))]
        swapped = a.evaluate([SiteRequest(h0, {"q": q, "k": k1, "v": v})])[0]
    for t, s in zip(together, alone):
        torch.testing.assert_close(t, s, rtol=0, atol=1e-6)
    assert (swapped - alone[0]).abs().max() > 1e-2  # the key input matters


def test_query_rows_are_shared_only_where_no_key_or_value_differs():
    group = 2
    x, y = torch.zeros(1), torch.ones(1)

    def blocks(*specs):
        reqs = [SiteRequest(types.SimpleNamespace(head=h), {"q": x, "k": k, "v": x}) for h, k in specs]
        return len(_query_blocks(reqs, group)[1])

    assert blocks((0, x), (1, x), (2, x), (3, x)) == 1  # every head on one input: one block
    assert blocks((0, x), (2, y)) == 1  # different KV heads: one block, each spliced from its own rows
    assert blocks((0, x), (1, y)) == 2  # one KV head, two key inputs: two blocks
    assert blocks((0, x), (1, y), (2, y), (3, x)) == 2


def test_a_bridge_that_does_not_decompose_is_refused(monkeypatch):
    """The once-per-bridge check compares every site with the model's own forward pass: an adapter that forgot
    Gemma-2's final logit soft cap would scrub a different model; it is refused instead."""
    model = bridge_models.bridge("gemma2", seed=1)
    _FACTS.pop(model, None)
    monkeypatch.setattr(model.adapter, "apply_output_logits_transform", lambda logits: logits)
    with pytest.raises(AdapterError, match=r"does not decompose.*output evaluated on its own input differs"):
        BridgeAdapter(model)
    _FACTS.pop(model, None)


def test_unsupported_bridges_are_refused_by_name():
    model = bridge_models.bridge("gpt2")
    model.set_use_split_qkv_input(True)
    try:
        with pytest.raises(AdapterError, match=r"use_split_qkv_input switched on.*set_use_split_qkv_input\(False\)"):
            scrub.adapt(model)
    finally:
        model.set_use_split_qkv_input(False)
    cfg = types.SimpleNamespace(n_heads=4, n_layers=1, d_vocab=8)
    odd_block = types.SimpleNamespace(cfg=cfg, blocks=torch.nn.ModuleList([torch.nn.Linear(2, 2)]))
    with pytest.raises(AdapterError, match="blocks of class Linear are not supported"):
        read_layout(odd_block)


def test_bfloat16_bridges_are_exact():
    model = bridge_models.bridge("llama_gqa", seed=2).to(torch.bfloat16)
    result = scrub.run(model, Hypothesis(Node("root")), DATA)
    assert result.scrubbed.dtype == torch.bfloat16
    assert torch.equal(result.scrubbed, result.model)
