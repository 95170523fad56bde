"""What every residual-stream transformer adapter shares: its site graph, the
TransformerLens hook names where its values live, and small helpers.

Sites: `embed`, `pos_embed` (learned positions only), `pad_mask` (models that
mask padding keys), `head.L.H` (z @ W_O of one head), `attn.L` (models with a
norm after the attention sum), `mlp.L`, `output`. A head reads q, k and v
(and `mask` when padding is masked); keys and values are read at every
position, or up to the query under causal attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from scrub.errors import AdapterError, DataError
from scrub.graph import ATTN, HEAD, IN, INPUT, KEYS, MLP, OUTPUT, OWN, RESIDUAL, WHOLE, ModelGraph, Port, Site

Q = Port("q", OWN, description="the query input: the residual stream at the head's own positions")
K = Port("k", KEYS, description="the key input: every position the head attends to")
V = Port("v", KEYS, description="the value input: every position the head attends to")
MASK = Port("mask", WHOLE, sources=("pad_mask",), description="which keys are padding (read from the tokens)")


def transformer_graph(n_layers: int, n_heads: int, has_mlp: bool, pad_mask: bool, causal: bool,
                      pos_embed: bool = True, notes: tuple[str, ...] = (), parallel: bool = False,
                      attn_sum: bool = False, n_kv_heads: Optional[int] = None) -> ModelGraph:
    """Sites of a residual transformer: embeddings, heads, MLPs, output.

    parallel: the MLP reads the block's input (GPT-J, NeoX), so `mlp.L` sits at the stage of layer L's heads.
    attn_sum: a norm follows the attention sum (Gemma-2, OLMo-2), so the heads of layer L write into a glue
    site `attn.L` (the sum, normalised) and only it writes into the residual stream.
    n_kv_heads: key/value heads per layer when fewer than query heads (grouped- or multi-query attention)."""
    head_ports = ("q", "k", "v", "mask") if pad_mask else ("q", "k", "v")
    sites = [Site("embed", INPUT, 0, description="token embedding")]
    if pos_embed:
        sites.append(Site("pos_embed", INPUT, 0, description="positional embedding"))
    if pad_mask:
        sites.append(Site("pad_mask", INPUT, 0, additive=False, positional=False,
                          description="which keys are padding (read by heads)"))
    group = n_heads // n_kv_heads if n_kv_heads else 1
    stage = 1
    for layer in range(n_layers):
        heads_stage = stage
        writes = f"attn.{layer}" if attn_sum else RESIDUAL
        for h in range(n_heads):
            sites.append(Site(f"head.{layer}.{h}", HEAD, heads_stage, head_ports, layer, h,
                              description=_head_description(layer, h, group, attn_sum), writes=writes))
        if attn_sum:
            stage += 1
            sites.append(Site(f"attn.{layer}", ATTN, stage, ("in",), layer, reads=writes,
                              description=f"norm(sum of head.{layer}.* + b_O): layer {layer}'s attention output"))
        if has_mlp:
            if not parallel:
                stage += 1
            sites.append(Site(f"mlp.{layer}", MLP, heads_stage if parallel else stage, ("in",), layer,
                              description="reads the block input (parallel block)" if parallel else ""))
        stage += 1
    sites.append(Site("output", OUTPUT, stage, ("in",), description="logits"))
    return ModelGraph(sites, positional=True, n_layers=n_layers, n_heads=n_heads, causal=causal,
                      ports=(IN, Q, K, V, MASK), notes=notes)


def _head_description(layer: int, head: int, group: int, attn_sum: bool) -> str:
    text = "z @ W_O of this head" + (f", into attn.{layer}" if attn_sum else "")
    if group > 1:
        first = head // group * group
        mates = [f"head.{layer}.{m}" for m in range(first, first + group) if m != head]
        text += f"; k/v from KV head {head // group}, shared with {', '.join(mates)}"
    return text


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


def check_token_inputs(inputs: Tensor, what: str, cfg=None) -> None:
    """Token ids `(N, pos)` that the model can read: within its vocabulary (`cfg.d_vocab`) and context
    (`cfg.n_ctx`) when the config says them. An id outside the vocabulary would be an IndexError deep in
    the embedding; data meant for another model is the usual cause."""
    if inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
        raise DataError(f"{what} takes token ids of shape (N, pos); the dataset's inputs have shape "
                        f"{tuple(inputs.shape)} and dtype {inputs.dtype}.")
    n_ctx, d_vocab = _positive(cfg, "n_ctx"), _positive(cfg, "d_vocab")
    if n_ctx is not None and inputs.shape[1] > n_ctx:
        raise DataError(f"the data's sequences have {inputs.shape[1]} positions but {what} reads at most {n_ctx} "
                        "(its context, n_ctx). Is the data meant for another model?")
    if inputs.numel() == 0:
        return
    low, high = int(inputs.min()), int(inputs.max())
    if low < 0 or (d_vocab is not None and high >= d_vocab):
        outside = (inputs < 0) | (inputs >= d_vocab) if d_vocab is not None else inputs < 0
        rows = outside.any(1).nonzero().flatten()
        vocab = f"the model's vocabulary has {d_vocab} tokens (0..{d_vocab - 1})" if d_vocab else \
            "token ids cannot be negative"
        raise DataError(f"the data's token ids range {low}..{high} but {vocab}: {len(rows)} data hold ids outside it "
                        f"(first: datum {int(rows[0])}). Is the data meant for another model?")


def _positive(cfg, name: str) -> Optional[int]:
    value = getattr(cfg, name, None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
