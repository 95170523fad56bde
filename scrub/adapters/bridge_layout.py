"""What a TransformerLens 4 `TransformerBridge` is made of, read off its modules.

Never off the architecture's name, and never off `hook_dict` alone: rotary
models list a `hook_pos_embed` that never fires, and NeoX / GPT-J list a
`hook_rot_k` that never fires. One probe forward pass says which hooks do.

The facts the adapter and its graph need:

- block: sequential, or parallel (GPT-J, NeoX: the MLP reads the block input);
- norms: before attention (`ln1`, absent in OLMo-2), after the attention sum
  (`ln1_post`: Gemma-2/3, OLMo-2), before and after the MLP;
- attention: query heads, key/value heads (grouped- and multi-query), and
  where one head's keys can be replaced: `hook_rot_k` where it fires (after
  QK-norm, clipping and rotary), else `hook_k`;
- positions: a learned `pos_embed`, or none outside attention (rotary);
- the model's sliding windows and soft caps, for the notes of its site list.

Only the block, attention and MLP classes whose decomposition was checked
are accepted; others are refused by name rather than scrubbed approximately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from scrub.errors import AdapterError

BLOCKS = {"BlockBridge": False, "ParallelBlockBridge": True}  # class name -> parallel attention and MLP
ATTENTIONS = ("AttentionBridge", "JointQKVAttentionBridge", "JointQKVPositionEmbeddingsAttentionBridge",
              "PositionEmbeddingsAttentionBridge")
MLPS = ("MLPBridge", "GatedMLPBridge")
SWITCHES = ("use_split_qkv_input", "use_attn_in", "use_attn_result")  # bridge modes that change attention's code path


@dataclass(frozen=True)
class BridgeLayout:
    n_layers: int
    n_heads: int
    n_kv_heads: int
    pos_embed: bool  # a learned positional embedding site
    rotary: bool  # positions act inside attention
    parallel: bool
    has_mlp: bool
    attn_norm: Optional[str]  # submodule of the block normalising the attention input
    attn_post_norm: Optional[str]  # ... normalising the attention sum (a glue site attn.L)
    mlp_norm: Optional[str]
    mlp_post_norm: Optional[str]
    k_splice: str  # attention hook (relative to blocks.L.attn) where one KV head's keys can be replaced
    causal: bool
    windows: tuple  # sliding window per layer (None: full attention), as the model's config states it
    attn_soft_cap: Optional[float]
    output_soft_cap: Optional[float]
    pad_token_id: Optional[int]
    d_vocab: int

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def mlp_read(self, layer: int) -> str:
        """The hook holding the residual stream `mlp.L` reads."""
        return f"blocks.{layer}.hook_resid_pre" if self.parallel else f"blocks.{layer}.hook_resid_mid"

    def notes(self) -> tuple[str, ...]:
        """Facts shown under the model's site list."""
        out = []
        if self.group > 1:
            out.append(
                f"Grouped-query attention: each layer's {self.n_heads} query heads share {self.n_kv_heads} key/value "
                f"head(s); head.L.H reads keys and values through KV head H // {self.group}. A claim on head.L.H.k "
                "(or .v) is about head H's attention alone: scrub computes the shared key and value projections "
                "separately for each query head that reads them (each head's own copy in the treeified model), so a "
                "claim never changes the keys or values another head of the group sees. To scrub a KV head for its "
                "whole group, claim .k (or .v) of every head of the group.")
        if not self.pos_embed:
            out.append("Positions act inside attention (rotary embeddings): there is no pos_embed site; claim "
                       "heads' q and k inputs instead." if self.rotary else
                       "The model has no positional-embedding site.")
        if self.parallel:
            out.append("Parallel attention and MLP: mlp.L reads the block's input (the residual stream the heads of "
                       "layer L read), not the attention output.")
        if self.attn_post_norm:
            out.append("A norm follows each layer's attention sum: the heads of layer L write into attn.L (their sum "
                       "plus b_O, normalised), and attn.L writes into the residual stream. Paths from a head to later "
                       "sites pass through attn.L: 'output <- attn.1 <- head.1.0', or 'output <- ... <- head.1.0'.")
        windowed = [str(layer) for layer, w in enumerate(self.windows) if w]
        if windowed:
            sizes = sorted({w for w in self.windows if w})
            out.append(f"Sliding-window attention on layer(s) {', '.join(windowed)} (window "
                       f"{', '.join(map(str, sizes))}): their heads read keys inside the window only, so a claim on "
                       "keys outside it changes nothing.")
        caps = [f"attention scores at {self.attn_soft_cap:g}" if self.attn_soft_cap else "",
                f"output logits at {self.output_soft_cap:g}" if self.output_soft_cap else ""]
        if any(caps):
            out.append("Soft-capped (tanh): " + " and ".join(c for c in caps if c) + "; sites include the caps.")
        return tuple(out)


def read_layout(bridge) -> BridgeLayout:
    """The layout of `bridge`, or an AdapterError naming what scrub cannot treat exactly."""
    cfg = bridge.cfg
    for switch in SWITCHES:
        if getattr(cfg, switch, False):
            raise AdapterError(f"this bridge has {switch} switched on, which changes how its attention is computed; "
                               f"switch it off (bridge.set_{switch}(False)) before scrubbing.")
    blocks = list(bridge.blocks)
    if not blocks:
        raise AdapterError("this bridge has no blocks.")
    kinds = {_class_name(b) for b in blocks}
    if len(kinds) > 1 or next(iter(kinds)) not in BLOCKS:
        raise AdapterError(f"blocks of class {', '.join(sorted(kinds))} are not supported: scrub handles "
                           f"{' and '.join(BLOCKS)} (sequential or parallel attention and MLP).")
    b0 = blocks[0]
    subs = set(b0._modules)
    attention = _class_name(b0.attn) if "attn" in subs else None
    if attention not in ATTENTIONS:
        raise AdapterError(f"attention of class {attention} is not supported: scrub evaluates single heads of "
                           f"{', '.join(ATTENTIONS)} only (other kinds, e.g. ALiBi or latent attention, are untested "
                           "and refused rather than scrubbed approximately).")
    has_mlp = "mlp" in subs
    if has_mlp and _class_name(b0.mlp) not in MLPS:
        raise AdapterError(f"MLPs of class {_class_name(b0.mlp)} are not supported (supported: {', '.join(MLPS)}; "
                           "mixture-of-experts MLPs are untested).")
    n_heads = int(cfg.n_heads)
    n_kv = int(getattr(cfg, "n_key_value_heads", None) or n_heads)
    if n_heads % n_kv:
        raise AdapterError(f"{n_heads} query heads cannot be grouped over {n_kv} key/value heads.")
    parallel = BLOCKS[_class_name(b0)]
    fired = _fired(bridge, ("hook_pos_embed", "blocks.0.attn.hook_rot_k"))
    if "ln2" in subs:
        mlp_norm = "ln2"
    else:  # GPT-J: one norm feeds attention and MLP; OLMo-2: the MLP reads the residual stream itself
        mlp_norm = "ln1" if parallel and "ln1" in subs else None
    hf_config = getattr(getattr(bridge, "original_model", None), "config", None)
    return BridgeLayout(
        n_layers=int(cfg.n_layers), n_heads=n_heads, n_kv_heads=n_kv,
        pos_embed=hasattr(bridge, "pos_embed") and "hook_pos_embed" in fired,
        rotary=getattr(cfg, "positional_embedding_type", "standard") == "rotary" or hasattr(bridge, "rotary_emb"),
        parallel=parallel, has_mlp=has_mlp,
        attn_norm="ln1" if "ln1" in subs else None,
        attn_post_norm="ln1_post" if "ln1_post" in subs else None,
        mlp_norm=mlp_norm if has_mlp else None,
        mlp_post_norm="ln2_post" if "ln2_post" in subs else None,
        k_splice="hook_rot_k" if "blocks.0.attn.hook_rot_k" in fired else "hook_k",
        causal=getattr(cfg, "attention_dir", "causal") != "bidirectional",
        windows=_windows(hf_config, int(cfg.n_layers)),
        attn_soft_cap=_positive(getattr(cfg, "attn_scores_soft_cap", None)),
        output_soft_cap=_positive(getattr(cfg, "output_logits_soft_cap", None)),
        pad_token_id=getattr(cfg, "pad_token_id", None),
        d_vocab=int(cfg.d_vocab),
    )


def _class_name(module) -> str:
    return type(module).__name__


def _positive(value) -> Optional[float]:
    return float(value) if value is not None and value > 0 else None


def _fired(bridge, names: tuple[str, ...]) -> set[str]:
    """Which of these hooks fire on a short forward pass (hook_dict also lists hooks that never do)."""
    present = [n for n in names if n in bridge.hook_dict]
    fired: set[str] = set()

    def note(name):
        def hook(act, hook=None):
            fired.add(name)
        return hook

    tokens = torch.full((1, 2), probe_token(bridge.cfg), device=_device(bridge))
    with torch.inference_mode(), bridge.hooks(fwd_hooks=[(n, note(n)) for n in present]):
        bridge(tokens)
    return fired


def probe_token(cfg) -> int:
    """A token id for probe passes that is not the padding token."""
    pad = getattr(cfg, "pad_token_id", None)
    return 1 if pad == 0 else 0


def _device(bridge) -> torch.device:
    for p in bridge.parameters():
        return p.device
    return torch.device("cpu")


def _windows(hf_config, n_layers: int) -> tuple:
    """Sliding window per layer as the Hugging Face config states it (informational; the attention mask the
    model builds is what the adapter uses)."""
    window = getattr(hf_config, "sliding_window", None) if hf_config is not None else None
    if not window:
        return (None,) * n_layers
    types = getattr(hf_config, "layer_types", None)
    if types is not None and len(types) == n_layers:
        return tuple(window if t == "sliding_attention" else None for t in types)
    if getattr(hf_config, "use_sliding_window", True) is False:
        return (None,) * n_layers
    return (window,) * n_layers  # Mistral: every layer
