"""Adapters: site listings, plain values that add up, and interventions that must fire."""

import pytest
import torch
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import scrub
from scrub import AdapterError, Dataset, InterventionError
from scrub.adapters import HookedAdapter, HookLayout
from scrub.adapters.hooks import run_hooked
from hypotheses import Hypothesis, Node

from conftest import tiny_tokens, tiny_transformer


def test_list_sites_names_every_site():
    table = scrub.list_sites(tiny_transformer(pad=True, bidirectional=True))
    for name in ("embed", "pos_embed", "pad_mask", "head.0.0", "head.1.1", "mlp.0", "mlp.1", "output"):
        assert name in table
    assert "q, k, v, mask" in table


def test_bridge_sites():
    from transformer_lens import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources import boot_native

    bridge = boot_native(TransformerBridgeConfig(d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=16, n_ctx=8,
                                                 d_vocab=6, act_fn="relu", normalization_type="LN", seed=0))
    adapter = scrub.adapt(bridge)
    assert [s.name for s in adapter.graph.sites] == ["embed", "pos_embed", "head.0.0", "head.0.1", "mlp.0", "output"]


@pytest.mark.parametrize("make", [lambda m: scrub.adapt(m), lambda m: HookedAdapter(m)])
def test_site_outputs_and_constants_sum_to_the_residual(make):
    """resid(output) - sum of all site outputs is a constant (the biases): the additive structure holds."""
    model = tiny_transformer(seed=3)
    adapter = make(model)
    toks = tiny_tokens(n=6, pos=5)
    sites = [s.name for s in adapter.graph.sites if s.additive and s.name != "output"]
    wants = {("out", s) for s in sites} | {("resid", "output")}
    a, b = adapter.plain(toks[:3], wants), adapter.plain(toks[3:], wants)
    const_a = a[("resid", "output")] - sum(a[("out", s)] for s in sites)
    const_b = b[("resid", "output")] - sum(b[("out", s)] for s in sites)
    assert torch.allclose(const_a, const_b, atol=1e-5)


def test_user_hook_settings_are_restored():
    model = tiny_transformer()
    HookedAdapter(model).plain(tiny_tokens(n=2), {("out", "head.0.0")})
    assert model.use_attn_result is False and model.use_split_qkv_input is False


class Skipper(HookedRootModule):
    """A model whose forward pass skips one of its hook points."""

    def __init__(self):
        super().__init__()
        self.hook_a = HookPoint()
        self.hook_b = HookPoint()
        self.setup()

    def forward(self, x):
        return self.hook_a(x) * 2  # hook_b never fires


def test_an_intervention_that_does_not_fire_is_an_error():
    model = Skipper()
    with pytest.raises(InterventionError, match=r"'hook_b' fired 0 times"):
        run_hooked(model, lambda: model(torch.ones(2)), [("hook_a", lambda x: None), ("hook_b", lambda x: x + 1)])


def test_an_intervention_with_the_wrong_shape_is_an_error():
    model = Skipper()
    with pytest.raises(InterventionError, match=r"hook 'hook_a' tried to write shape \(3,\)"):
        run_hooked(model, lambda: model(torch.ones(2)), [("hook_a", lambda x: torch.ones(3))])


def test_hooked_module_without_per_head_hooks_is_refused_clearly():
    with pytest.raises(AdapterError, match="lacks hook points"):
        HookedAdapter(Skipper(), HookLayout(n_layers=1, n_heads=1, has_mlp=False))


def test_unsupported_objects():
    with pytest.raises(AdapterError, match="cannot scrub a str"):
        scrub.adapt("gpt2")


def test_inputs_that_do_not_fit_the_model():
    model = tiny_transformer()
    with pytest.raises(scrub.DataError, match=r"token ids of shape \(N, pos\)"):
        scrub.run(model, Hypothesis(Node("root")), Dataset(torch.randn(4, 3)))


def test_layer_entry_point_equals_the_forward_pass_with_raw_or_normalized_inputs():
    """attention_heads is what the fast adapter evaluates heads with: on the model's own residual it
    must give the per-head results of a split-input forward pass, whether it normalises or the caller does."""
    model = tiny_transformer()
    tokens = tiny_tokens(4)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in ("blocks.1.hook_resid_pre",
                                                                          "blocks.1.attn.hook_z"))
    resid = cache["blocks.1.hook_resid_pre"]
    attn = model.blocks[1].attn
    expected = torch.einsum("bqhd,hdm->bqhm", cache["blocks.1.attn.hook_z"], attn.W_O)
    heads = torch.tensor([0, 1])
    per_head = resid[:, :, None].expand(-1, -1, 2, -1)
    raw = model.attention_heads(1, per_head, per_head, per_head, None, heads=heads)
    normed = model.blocks[1].ln1(per_head)
    pre = model.attention_heads(1, normed, normed, normed, None, heads=heads, normalized=True)
    torch.testing.assert_close(raw, expected[:, :, :2])
    torch.testing.assert_close(pre, expected[:, :, :2])
    with pytest.raises(ValueError, match="normalized inputs need `heads`"):
        model.attention_heads(1, normed, normed, normed, None, normalized=True)
