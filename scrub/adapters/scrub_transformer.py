"""Fast adapter for the project's own ScrubTransformer.

Plain passes are ordinary forward passes with capture hooks (per-head outputs
from `hook_z`, so no per-head result tensor is built for every head). Sites
are evaluated with the model's layer-level entry points, which skip the layers
below, and heads are packed: requests for different heads of a layer share
rows, so one attention call computes each requested head once.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import Tensor

from scrub.adapters.base import MASK, OUT, SiteRequest, capture, run_hooked
from scrub.adapters.hooked import HookedAdapter, HookLayout
from scrub.errors import InterventionError
from scrub.graph import HEAD, MLP, OUTPUT
from scrub.models.transformer import ScrubTransformer


class ScrubTransformerAdapter(HookedAdapter):
    kind = "scrub-transformer"

    def __init__(self, model: ScrubTransformer):
        cfg = model.cfg
        layout = HookLayout(cfg.n_layers, cfg.n_heads, not cfg.attn_only, cfg.pad_token_id,
                            cfg.attention_dir == "causal")
        super().__init__(model, layout)

    # plain passes read hook_z and sites are evaluated by direct layer calls,
    # so no TransformerLens mode needs switching on
    _modes = ()

    def _plain_hook(self, what, site):
        if what == OUT and site.kind == HEAD:
            return f"blocks.{site.layer}.attn.hook_z", (site.stage, 1)
        return super()._plain_hook(what, site)

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        wants = set(wants)
        heads = [(w, n) for w, n in wants if w == OUT and self.graph.site(n).kind == HEAD]
        out = super().plain(inputs, wants)
        for key in heads:  # hook_z slice -> this head's z @ W_O
            site = self.graph.site(key[1])
            W_O = self.model.blocks[site.layer].attn.W_O[site.head]
            out[key] = out[key] @ W_O  # (b, pos, d_head) @ (d_head, d_model)
        return out

    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        kind = requests[0].site.kind
        if kind == HEAD:
            return self._eval_heads(requests)
        x = torch.cat([r.inputs["in"] for r in requests])
        B = requests[0].inputs["in"].shape[0]
        if kind == MLP:
            out = self.model.mlp_out(requests[0].site.layer, x)
        elif kind == OUTPUT:
            out = self.model.unembed_logits(x)
        else:
            return super().evaluate(requests)
        return list(out.split(B))

    def _eval_heads(self, requests: list[SiteRequest]) -> list[Tensor]:
        model, cfg = self.model, self.model.cfg
        layer = requests[0].site.layer
        B, pos, d = requests[0].inputs["q"].shape
        heads = sorted({r.site.head for r in requests})  # compute only the heads asked for
        slot = {h: i for i, h in enumerate(heads)}
        # pack: row block b holds, for each requested head, that head's b-th request
        count: dict[int, int] = {}
        where = []
        for r in requests:
            h = r.site.head
            where.append((count.get(h, 0), slot[h]))
            count[h] = count.get(h, 0) + 1
        n_blocks = max(count.values())
        shape = (n_blocks * B, pos, len(heads), d)
        ins = {p: torch.zeros(shape, dtype=self.dtype, device=self.device) for p in ("q", "k", "v")}
        key_mask: Optional[Tensor] = None
        if cfg.pad_token_id is not None:
            key_mask = torch.ones(n_blocks * B, len(heads), pos, dtype=torch.bool, device=self.device)
        for r, (b, i) in zip(requests, where):
            rows = slice(b * B, (b + 1) * B)
            for p in ("q", "k", "v"):
                ins[p][rows, :, i] = r.inputs[p]
            if key_mask is not None:
                if r.mask_inputs is None:
                    raise InterventionError(f"{r.site.name}: this model masks padding, but no mask input was planned.")
                key_mask[rows, i] = model.key_mask(r.mask_inputs)
        index = torch.tensor(heads, device=self.device)
        result = model.attention_heads(layer, ins["q"], ins["k"], ins["v"], key_mask, heads=index)
        return [result[b * B:(b + 1) * B, :, i] for b, i in where]
