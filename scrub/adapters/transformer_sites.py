"""What every residual-stream transformer adapter shares: its site graph, the
TransformerLens hook names where its values live, and small helpers.

Sites: `embed`, `pos_embed` (learned positions only), `pad_mask` (models that
mask padding keys), `head.L.H` (z @ W_O of one head), `mlp.L`, `output`.
A head reads q, k and v (and `mask` when padding is masked); keys and values
are read at every position, or up to the query under causal attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from scrub.errors import AdapterError, DataError
from scrub.graph import HEAD, IN, INPUT, KEYS, MLP, OUTPUT, OWN, WHOLE, ModelGraph, Port, Site

Q = Port("q", OWN, description="the query input: the residual stream at the head's own positions")
K = Port("k", KEYS, description="the key input: every position the head attends to")
V = Port("v", KEYS, description="the value input: every position the head attends to")
MASK = Port("mask", WHOLE, sources=("pad_mask",), description="which keys are padding (read from the tokens)")


def transformer_graph(n_layers: int, n_heads: int, has_mlp: bool, pad_mask: bool, causal: bool,
                      pos_embed: bool = True, notes: tuple[str, ...] = ()) -> ModelGraph:
    """Sites of a residual transformer: embeddings, heads, MLPs, output."""
    head_ports = ("q", "k", "v", "mask") if pad_mask else ("q", "k", "v")
    sites = [Site("embed", INPUT, 0, description="token embedding")]
    if pos_embed:
        sites.append(Site("pos_embed", INPUT, 0, description="positional embedding"))
    if pad_mask:
        sites.append(Site("pad_mask", INPUT, 0, additive=False, positional=False,
                          description="which keys are padding (read by heads)"))
    for layer in range(n_layers):
        for h in range(n_heads):
            sites.append(Site(f"head.{layer}.{h}", HEAD, 2 * layer + 1, head_ports, layer, h,
                              description="z @ W_O of this head"))
        if has_mlp:
            sites.append(Site(f"mlp.{layer}", MLP, 2 * layer + 2, ("in",), layer))
    sites.append(Site("output", OUTPUT, 2 * n_layers + 1, ("in",), description="logits"))
    return ModelGraph(sites, positional=True, n_layers=n_layers, n_heads=n_heads, causal=causal,
                      ports=(IN, Q, K, V, MASK), notes=notes)


@dataclass(frozen=True)
class HookLayout:
    """Where a transformer-shaped HookedRootModule exposes what scrubbing needs (TransformerLens' names
    by default; the one table of them). `{L}` is replaced by the layer index."""

    n_layers: int
    n_heads: int
    has_mlp: bool
    pad_token_id: Optional[int] = None
    causal: bool = True
    embed: str = "hook_embed"
    pos_embed: str = "hook_pos_embed"
    resid_pre: str = "blocks.{L}.hook_resid_pre"
    q_input: str = "blocks.{L}.hook_q_input"
    k_input: str = "blocks.{L}.hook_k_input"
    v_input: str = "blocks.{L}.hook_v_input"
    result: str = "blocks.{L}.attn.hook_result"
    z: str = "blocks.{L}.attn.hook_z"
    resid_mid: str = "blocks.{L}.hook_resid_mid"
    mlp_in: str = "blocks.{L}.hook_mlp_in"
    mlp_out: str = "blocks.{L}.hook_mlp_out"
    resid_final: str = "blocks.{last}.hook_resid_post"

    def name(self, field: str, layer: Optional[int] = None) -> str:
        return getattr(self, field).format(L=layer, last=self.n_layers - 1)

    @classmethod
    def from_model(cls, model, **overrides) -> "HookLayout":
        cfg = getattr(model, "cfg", None)
        try:
            n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
        except (AttributeError, TypeError):
            raise AdapterError(f"cannot read n_layers/n_heads from {type(model).__name__}.cfg; pass "
                               "layout=HookLayout(n_layers=..., n_heads=..., has_mlp=...) to adapt().") from None
        has_mlp = not bool(getattr(cfg, "attn_only", False))
        causal = getattr(cfg, "attention_dir", "causal") != "bidirectional"
        return cls(n_layers, n_heads, has_mlp, getattr(cfg, "pad_token_id", None), causal, **overrides)

    def plain_hook(self, what: str, site: Site, head_field: str = "result") -> tuple[str, tuple[int, int]]:
        """(hook name, firing order) holding `what` ("out" or "resid") of `site`."""
        if what == "out":
            if site.name in ("embed", "pos_embed"):
                return self.name(site.name), (0, 0 if site.name == "embed" else 1)
            if site.kind == HEAD:
                return self.name(head_field, site.layer), (site.stage, 1)
            if site.kind == MLP:
                return self.name("mlp_out", site.layer), (site.stage, 1)
        if what == "resid":
            if site.kind == HEAD:
                return self.name("resid_pre", site.layer), (site.stage, 0)
            if site.kind == MLP:
                return self.name("resid_mid", site.layer), (site.stage, 0)
            if site.kind == OUTPUT:
                return self.name("resid_final"), (site.stage, 0)
        raise AdapterError(f"no plain value {what!r} for site {site.name!r}")


def head_result(z: Tensor, W_O: Tensor, head: int) -> Tensor:
    """One head's output `(batch, pos, d_model)` from `z` `(batch, pos, heads, d_head)`: z[:, :, h] @ W_O[h]."""
    return z[:, :, head] @ W_O[head]


def plain_with_z(adapter, inputs: Tensor, wants, stop_early: bool = True, width: Optional[int] = None,
                 forward_kw: Optional[dict] = None) -> dict:
    """Plain values where per-head outputs come from hook_z (z @ W_O for the wanted heads only), so no
    per-head result tensor is built for every head. `adapter` has `model` (TL block layout), `graph`, `layout`.
    With `width`, values hold the first `width` positions only."""
    from scrub.adapters.hooks import plain_values

    def hook_for(what, site):
        return adapter.layout.plain_hook(what, site, head_field="z")

    def read(what, site, act):
        if width is not None and site.positional:
            act = act[:, :width]
        if what == "out" and site.kind == HEAD:
            return head_result(act, adapter.model.blocks[site.layer].attn.W_O, site.head)
        return act

    return plain_values(adapter.model, adapter.graph, inputs, wants, hook_for, read, stop_early=stop_early,
                        forward_kw=forward_kw)


@dataclass(frozen=True)
class Dims:
    """Shapes the cost model counts multiply-adds with."""

    d_model: int
    d_head: int
    d_mlp: int
    d_vocab_out: int


def dims_from_cfg(cfg) -> Optional[Dims]:
    """Dims from a TransformerLens-style config (None if it has no d_model)."""
    if cfg is None or not hasattr(cfg, "d_model"):
        return None
    vocab = getattr(cfg, "d_vocab_out", None)
    if vocab is None or vocab <= 0:
        vocab = getattr(cfg, "d_vocab", 1)
    return Dims(int(cfg.d_model), int(cfg.d_head), int(getattr(cfg, "d_mlp", None) or 0), int(vocab))


def check_token_inputs(inputs: Tensor, what: str) -> None:
    if inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
        raise DataError(f"{what} takes token ids of shape (N, pos); the dataset's inputs have shape "
                        f"{tuple(inputs.shape)} and dtype {inputs.dtype}.")
