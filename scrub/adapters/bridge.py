"""Adapter for TransformerLens 4 `TransformerBridge` models (e.g. from `boot_native`).

These bridges have no per-head result or per-head q/k/v input hooks
(`set_use_attn_result` / `set_use_split_qkv_input` raise). So a head's output
is `hook_z[:, :, h] @ W_O[h]`, and a head is evaluated on separate q, k and v
inputs by running the bridge's own LayerNorm and attention module on the three
inputs stacked as rows, with hooks on `hook_k` / `hook_v` copying each
request's key and value rows into its query rows before attention is taken.
The model's own attention code (masks, rotary, soft caps) does the rest.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.hooks import capture, run_hooked
from scrub.adapters.transformer_sites import (HookLayout, check_token_inputs, dims_from_cfg, head_result,
                                              plain_with_z, transformer_graph)
from scrub.errors import AdapterError
from scrub.graph import HEAD, MLP, OUTPUT


class BridgeAdapter(Adapter):
    def __init__(self, model):
        cfg = model.cfg
        if getattr(cfg, "positional_embedding_type", "standard") not in (None, "standard"):
            raise AdapterError("only bridges with standard (learned) positional embeddings are supported: rotary "
                               "models have no positional-embedding site to scrub.")
        self.attn_only = bool(getattr(cfg, "attn_only", False))
        causal = getattr(cfg, "attention_dir", "causal") != "bidirectional"
        # bridges name the final residual at the final norm's input, and have per-head z but no per-head result
        self.layout = HookLayout.from_model(model, resid_final="ln_final.hook_in")
        super().__init__(model, transformer_graph(cfg.n_layers, cfg.n_heads, not self.attn_only, pad_mask=False,
                                                  causal=causal))

    @classmethod
    def accepts(cls, model) -> bool:
        try:
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError:  # pragma: no cover - transformer-lens is a dependency
            return False
        return isinstance(model, TransformerBridge)

    def check_inputs(self, inputs: Tensor) -> None:
        check_token_inputs(inputs, "a TransformerBridge", self.model.cfg)

    def dims(self):
        return dims_from_cfg(self.model.cfg)

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        return plain_with_z(self, inputs, wants, stop_early=False)

    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        site = requests[0].site
        if site.kind == HEAD:
            return self._eval_heads(requests)
        x = torch.cat([r.inputs["in"] for r in requests])
        B = requests[0].inputs["in"].shape[0]
        if site.kind == MLP:
            block = self.model.blocks[site.layer]
            out = block.mlp(block.ln2(x))
        elif site.kind == OUTPUT:
            out = self.model.unembed(self.model.ln_final(x))
        else:
            raise AdapterError(f"site {site.name!r} reads no inputs and cannot be evaluated")
        return list(out.split(B))

    def _eval_heads(self, requests: list[SiteRequest]) -> list[Tensor]:
        """Rows: [q inputs of every request | k inputs | v inputs]."""
        layer = requests[0].site.layer
        block = self.model.blocks[layer]
        B = requests[0].inputs["q"].shape[0]
        R = len(requests)
        x = torch.cat([r.inputs[p] for p in ("q", "k", "v") for r in requests])  # (3*R*B, pos, d_model)
        store: dict = {}

        def splice(part: int):  # copy part (1: keys, 2: values) into the query rows, per request's head
            def fn(act: Tensor) -> Tensor:
                act = act.clone()
                for i, r in enumerate(requests):
                    src = slice((part * R + i) * B, (part * R + i + 1) * B)
                    act[i * B:(i + 1) * B, :, r.site.head] = act[src, :, r.site.head]
                return act
            return fn

        hooks = [(f"blocks.{layer}.attn.hook_k", splice(1)), (f"blocks.{layer}.attn.hook_v", splice(2)),
                 (f"blocks.{layer}.attn.hook_z", capture(store, "z"))]
        run_hooked(self.model, lambda: block.attn(block.ln1(x)), hooks)
        z = store["z"]
        return [head_result(z[i * B:(i + 1) * B], block.attn.W_O, r.site.head) for i, r in enumerate(requests)]
