"""The project's own small transformer, a HookedRootModule.

Why not a TransformerLens `boot_native` model: in TransformerLens 4 those have
no per-head result hook and no per-head q/k/v input hooks, and causal
scrubbing needs both (a head reads its query, key and value inputs as three
separate edges). This class has them, with TransformerLens' hook names and
parameter names (`blocks.0.attn.W_Q` is `[n_heads, d_model, d_head]`), so old
TransformerLens state dicts load by key, and TL-style hook code works on it.

Layer-level entry points (`attention_heads`, `mlp_out`, `unembed_logits`) let
the engine evaluate one site on chosen inputs without a whole forward pass;
their hook points fire as in a full forward pass, except the per-head input
hooks when only some heads are computed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import einops
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens import HookedRootModule

from scrub.errors import AdapterError

# Large negative score for masked keys: finite, so a fully masked row gives a
# uniform pattern instead of NaN (TransformerLens used the same constant).
MASKED_SCORE = -1e5

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


@dataclass(frozen=True)
class TransformerConfig:
    """Shape and behaviour of a ScrubTransformer. `d_mlp=None` means attention-only."""

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: Optional[int] = None
    d_vocab_out: Optional[int] = None
    act_fn: str = "relu"
    normalization: Optional[str] = "LN"  # "LN" or None
    attention_dir: str = "causal"  # "causal" or "bidirectional"
    pad_token_id: Optional[int] = None  # keys holding this token are masked out
    unembed_bias: bool = True
    eps: float = 1e-5
    init_range: float = 0.02
    seed: Optional[int] = None
    extra: dict = field(default_factory=dict)  # free-form metadata saved with checkpoints

    def __post_init__(self):
        if self.act_fn not in _ACTIVATIONS:
            raise AdapterError(f"act_fn={self.act_fn!r} is not supported; use one of {sorted(_ACTIVATIONS)}.")
        if self.normalization not in ("LN", None):
            raise AdapterError(f"normalization={self.normalization!r}: use 'LN' or None.")
        if self.attention_dir not in ("causal", "bidirectional"):
            raise AdapterError(f"attention_dir={self.attention_dir!r}: use 'causal' or 'bidirectional'.")

    @property
    def attn_only(self) -> bool:
        return self.d_mlp is None

    @property
    def vocab_out(self) -> int:
        return self.d_vocab_out or self.d_vocab

    def to_dict(self) -> dict:
        return asdict(self)


class LayerNorm(nn.Module):
    """LayerNorm with TL parameter names (`w`, `b`) and scale/normalized hooks.

    Works on any leading shape, so per-head inputs `[batch, pos, head, d_model]`
    are normalised per head, as TransformerLens does with split q/k/v inputs.
    """

    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        if not (self.hook_scale._forward_hooks or self.hook_normalized._forward_hooks):
            return F.layer_norm(x, self.w.shape, self.w, self.b, self.eps)  # fast path: nobody is watching
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w + self.b


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        h, m, d = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, m, d))
        self.W_K = nn.Parameter(torch.empty(h, m, d))
        self.W_V = nn.Parameter(torch.empty(h, m, d))
        self.W_O = nn.Parameter(torch.empty(h, d, m))
        self.b_Q = nn.Parameter(torch.zeros(h, d))
        self.b_K = nn.Parameter(torch.zeros(h, d))
        self.b_V = nn.Parameter(torch.zeros(h, d))
        self.b_O = nn.Parameter(torch.zeros(m))
        self.scale = math.sqrt(d)
        for name in ("q", "k", "v", "attn_scores", "pattern", "z", "result"):
            setattr(self, f"hook_{name}", HookPoint())

    def _project(self, x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        # x: (batch, pos, d_model) shared by heads, or (batch, pos, head, d_model) per head
        if x.dim() == 3:
            return torch.einsum("bpm,hmd->bphd", x, W) + b
        return torch.einsum("bphm,hmd->bphd", x, W) + b

    def forward(self, q_in: Tensor, k_in: Tensor, v_in: Tensor, key_mask: Optional[Tensor],
                use_result: bool = False, heads: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """Returns (attention output summed over heads with b_O, per-head result or None); with `heads`,
        only the per-head result (a sum over some heads is no attention output).

        key_mask: bool, True where a key may be attended to; shape (batch, k_pos)
        or (batch, head, k_pos) when heads of one row read different data.
        heads: compute only these heads (indices); per-head inputs then have one
        slot per selected head. Used to evaluate a few heads without the rest.
        """
        W = [self.W_Q, self.W_K, self.W_V, self.W_O, self.b_Q, self.b_K, self.b_V]
        if heads is not None:
            W = [w[heads] for w in W]
        W_Q, W_K, W_V, W_O, b_Q, b_K, b_V = W
        q = self.hook_q(self._project(q_in, W_Q, b_Q))  # (b, q_pos, h, d_head)
        k = self.hook_k(self._project(k_in, W_K, b_K))  # (b, k_pos, h, d_head)
        v = self.hook_v(self._project(v_in, W_V, b_V))
        scores = torch.einsum("bqhd,bkhd->bhqk", q / self.scale, k)  # scale the (smaller) queries
        n_q, n_k = scores.shape[-2], scores.shape[-1]
        if self.cfg.attention_dir == "causal":
            causal = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~causal, MASKED_SCORE)
        if key_mask is not None:
            km = key_mask[:, None, None, :] if key_mask.dim() == 2 else key_mask[:, :, None, :]
            scores = scores.masked_fill(~km, MASKED_SCORE)
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(scores.softmax(-1))
        z = self.hook_z(torch.einsum("bhqk,bkhd->bqhd", pattern, v))
        if use_result:
            result = self.hook_result(torch.einsum("bqhd,hdm->bqhm", z, W_O))  # (b, pos, h, d_model)
            return (None if heads is not None else result.sum(2) + self.b_O), result
        return torch.einsum("bqhd,hdm->bqm", z, W_O) + self.b_O, None


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = _ACTIVATIONS[cfg.act_fn]
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        pre = self.hook_pre(F.linear(x, self.W_in.T, self.b_in))
        return F.linear(self.hook_post(self.act(pre)), self.W_out.T, self.b_out)


def _norm(cfg: TransformerConfig) -> nn.Module:
    return LayerNorm(cfg.d_model, cfg.eps) if cfg.normalization == "LN" else nn.Identity()


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.ln1 = _norm(cfg)
        self.attn = Attention(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_q_input = HookPoint()
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_resid_post = HookPoint()
        if not cfg.attn_only:
            self.ln2 = _norm(cfg)
            self.mlp = MLP(cfg)
            self.hook_mlp_in = HookPoint()
            self.hook_mlp_out = HookPoint()

    def forward(self, resid: Tensor, key_mask: Optional[Tensor], split_qkv: bool, use_result: bool,
                n_queries: Optional[int] = None) -> Tensor:
        """n_queries: compute only the first n_queries positions (their queries still read every key)."""
        resid = self.hook_resid_pre(resid)
        q = slice(None) if n_queries is None else slice(0, n_queries)
        if split_qkv:
            per_head = einops.repeat(resid, "b p m -> b p h m", h=self.cfg.n_heads)
            q_in = self.hook_q_input(per_head[:, q].clone())
            k_in = self.hook_k_input(per_head.clone())
            v_in = self.hook_v_input(per_head.clone())
            attn_out, _ = self.attn(self.ln1(q_in), self.ln1(k_in), self.ln1(v_in), key_mask, use_result)
        else:
            x = self.ln1(resid)
            attn_out, _ = self.attn(x[:, q], x, x, key_mask, use_result)
        resid = self.hook_resid_mid(resid[:, q] + self.hook_attn_out(attn_out))
        if not self.cfg.attn_only:
            mlp_in = self.hook_mlp_in(resid)
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(mlp_in)))
        return self.hook_resid_post(resid)


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.W_pos[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int, bias: bool):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(d_vocab_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.W_U.T, self.b_U)  # one fused multiply-add (no separate bias pass)


class ScrubTransformer(HookedRootModule):
    """A small pre-LN transformer with every hook causal scrubbing needs.

    Input: token ids `(batch, pos)`. Output: logits `(batch, pos, d_vocab_out)`.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg.d_vocab, cfg.d_model)
        self.pos_embed = PosEmbed(cfg.n_ctx, cfg.d_model)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = _norm(cfg)
        self.unembed = Unembed(cfg.d_model, cfg.vocab_out, cfg.unembed_bias)
        self.use_split_qkv_input = False
        self.use_attn_result = False
        self._init_weights()
        self.setup()

    def _init_weights(self) -> None:
        gen = torch.Generator().manual_seed(self.cfg.seed) if self.cfg.seed is not None else None
        for name, p in self.named_parameters():
            if name.endswith((".w",)):
                continue  # LayerNorm scales stay at 1
            if p.dim() >= 2:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * self.cfg.init_range)

    # TransformerLens-style switches, so hook code written for TL works here.
    def set_use_split_qkv_input(self, value: bool) -> None:
        self.use_split_qkv_input = bool(value)

    def set_use_attn_result(self, value: bool) -> None:
        self.use_attn_result = bool(value)

    def key_mask(self, tokens: Tensor) -> Optional[Tensor]:
        """True where a key position holds a real token (None when nothing is masked)."""
        if self.cfg.pad_token_id is None:
            return None
        return tokens != self.cfg.pad_token_id

    def forward(self, tokens: Tensor, queries: Optional[tuple[int, int]] = None) -> Tensor:
        """queries=(layer, n): from block `layer` on, compute only the first n positions (block `layer`'s
        queries still read every key). For callers that need nothing later at other positions."""
        if tokens.dim() != 2:
            raise AdapterError(f"ScrubTransformer expects token ids of shape (batch, pos); got {tuple(tokens.shape)}.")
        if tokens.shape[1] > self.cfg.n_ctx:
            raise AdapterError(f"sequence length {tokens.shape[1]} exceeds n_ctx={self.cfg.n_ctx}.")
        key_mask = self.key_mask(tokens)
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for layer, block in enumerate(self.blocks):
            n_queries = queries[1] if queries is not None and layer == queries[0] else None
            resid = block(resid, key_mask, self.use_split_qkv_input, self.use_attn_result, n_queries)
        return self.unembed(self.ln_final(resid))

    # --- layer-level entry points used by the engine ------------------------
    def attention_heads(self, layer: int, q_in: Tensor, k_in: Tensor, v_in: Tensor,
                        key_mask: Optional[Tensor], heads: Optional[Tensor] = None,
                        normalized: bool = False) -> Tensor:
        """Per-head outputs `(batch, pos, head, d_model)` (z @ W_O, no b_O) of one
        layer, where head slot i reads `q_in[:, :, i]`, `k_in[:, :, i]`, `v_in[:, :, i]`
        (residual-stream inputs before LayerNorm, or after it with `normalized`,
        for callers that normalise each distinct input once themselves); slot i
        is head `heads[i]`, or head i when `heads` is None."""
        block = self.blocks[layer]
        if heads is None:  # the per-head input hooks see every head, as in a split-input forward pass
            if normalized:
                raise ValueError("normalized inputs need `heads`: the per-head input hooks expect raw residuals")
            q_in, k_in, v_in = block.hook_q_input(q_in), block.hook_k_input(k_in), block.hook_v_input(v_in)
        if normalized:
            q, k, v = q_in, k_in, v_in
        else:  # normalise each distinct input once (q, k and v often share one)
            normed: dict[int, Tensor] = {}
            q, k, v = (normed.setdefault(id(x), block.ln1(x)) for x in (q_in, k_in, v_in))
        _, result = block.attn(q, k, v, key_mask, use_result=True, heads=heads)
        return result

    def mlp_out(self, layer: int, mlp_in: Tensor) -> Tensor:
        block = self.blocks[layer]
        return block.hook_mlp_out(block.mlp(block.ln2(block.hook_mlp_in(mlp_in))))

    def unembed_logits(self, resid_final: Tensor) -> Tensor:
        return self.unembed(self.ln_final(resid_final))


def save_checkpoint(model: ScrubTransformer, path, **metadata) -> None:
    """Save config and weights in one file loadable with `weights_only=True`."""
    cfg = model.cfg.to_dict()
    cfg["extra"] = {**cfg.get("extra", {}), **metadata}
    torch.save({"config": cfg, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def load_checkpoint(path, device: str | torch.device = "cpu") -> ScrubTransformer:
    """A checkpoint written by `save_checkpoint` (loaded with weights_only: it can hold no code)."""
    from scrub.devices import resolve_device
    from scrub.files import load_tensors

    device = resolve_device(device)  # before reading: a bad device name is the first thing to hear about
    blob = load_tensors(path, "checkpoint")
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise AdapterError(f"{path} is not a scrub checkpoint (expected keys 'config' and 'state_dict').")
    try:
        cfg = TransformerConfig(**blob["config"])
    except TypeError as exc:
        raise AdapterError(f"{path}: the checkpoint's config does not fit this version of scrub ({exc}).") from None
    model = ScrubTransformer(cfg)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(f"{path}: the checkpoint's weights do not fit its config ({first[:200]}).") from None
    return model.to(device).eval()
