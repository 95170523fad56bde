"""Fast adapter for the project's own ScrubTransformer.

Plain passes are ordinary forward passes with capture hooks (per-head outputs
from `hook_z`, so no per-head result tensor is built for every head). Sites
are evaluated with the model's layer-level entry points, which skip the layers
below, and heads are packed: requests for different heads of a layer share
rows, so one attention call computes each requested head once.
"""

from __future__ import annotations

import sys
from typing import Iterable, Optional

import torch
from torch import Tensor

from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.transformer_sites import (HookLayout, check_token_inputs, dims_from_cfg, plain_with_z,
                                              transformer_graph)
from scrub.errors import AdapterError, InterventionError
from scrub.graph import HEAD, MLP, OUTPUT, ModelGraph


def config_graph(cfg) -> ModelGraph:
    """The sites of a ScrubTransformer with config `cfg` (a TransformerConfig, or any object with its
    attributes): the graph is a function of the config alone."""
    return transformer_graph(cfg.n_layers, cfg.n_heads, not cfg.attn_only, cfg.pad_token_id is not None,
                             cfg.attention_dir == "causal")


def checkpoint_graph(path) -> ModelGraph:
    """The sites of a checkpoint written by `save_checkpoint`, from its config only: no model is built, so
    `scrub sites` needs torch but not TransformerLens (a slow import)."""
    from types import SimpleNamespace

    from scrub.files import load_tensors

    blob = load_tensors(path, "checkpoint")
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), dict):
        raise AdapterError(f"{path} is not a scrub checkpoint (expected keys 'config' and 'state_dict').")
    cfg = {"pad_token_id": None, "attention_dir": "causal", **blob["config"]}
    cfg["attn_only"] = cfg.get("d_mlp") is None  # a property of TransformerConfig, not a saved field
    try:
        return config_graph(SimpleNamespace(**cfg))
    except (AttributeError, TypeError) as exc:
        raise AdapterError(f"{path}: the checkpoint's config does not describe a transformer ({exc}).") from None


class ScrubTransformerAdapter(Adapter):
    trims = True  # causal attention and masked padding keys: early positions never read trimmed ones

    def __init__(self, model):
        cfg = model.cfg
        self.layout = HookLayout(cfg.n_layers, cfg.n_heads, not cfg.attn_only, cfg.pad_token_id,
                                 cfg.attention_dir == "causal")
        super().__init__(model, config_graph(cfg))

    @classmethod
    def accepts(cls, model) -> bool:
        # No import of scrub.models.transformer here (it imports TransformerLens): a ScrubTransformer can only
        # exist once its module has been imported, so look it up among the loaded modules.
        module = sys.modules.get("scrub.models.transformer")
        return module is not None and isinstance(model, module.ScrubTransformer)

    def check_inputs(self, inputs: Tensor) -> None:
        check_token_inputs(inputs, "this transformer", self.model.cfg)

    def dims(self):
        return dims_from_cfg(self.model.cfg)

    def exact_widths(self, inputs: Tensor, width: int) -> Tensor:
        """Causal: `width` (position t reads positions <= t). Bidirectional with masked padding: through
        the row's last real token (later positions are masked keys, whose weights are exactly 0), and at
        least `width`; a row of padding alone keeps every position (its pattern is uniform over all
        keys). Only trailing positions are ever trimmed: left padding keeps its positions."""
        n, P = inputs.shape
        if self.graph.causal:
            return torch.full((n,), min(width, P), dtype=torch.long, device=inputs.device)
        pad = self.model.cfg.pad_token_id
        if pad is None:
            return torch.full((n,), P, dtype=torch.long, device=inputs.device)
        real = inputs != pad
        through_last = P - real.flip(1).long().argmax(1)  # 1 + index of the last real token
        return torch.where(real.any(1), through_last.clamp(min=min(width, P)), torch.full_like(through_last, P))

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        return plain_with_z(self, inputs, wants)

    def plain_prefix(self, inputs: Tensor, wants: Iterable[tuple[str, str]], width: int) -> dict:
        """The last block a bidirectional pass needs computes only the first `width` positions: nothing
        after it reads its other positions (earlier blocks run in full: their keys are read)."""
        wants = set(wants)
        kw = None
        if width < inputs.shape[1] and not self.graph.causal:
            kw = {"queries": (self._last_block(wants), width)}
        return plain_with_z(self, inputs, wants, width=width, forward_kw=kw)

    def _last_block(self, wants) -> int:
        """The deepest block whose computation some wanted value needs (the model's last for logits)."""
        needed = 0
        for what, name in wants:
            site = self.graph.site(name)
            needed = max(needed, site.stage if what == "out" else site.stage - 1)  # a read residual: stages below
        return min((needed - 1) // 2, self.model.cfg.n_layers - 1) if needed >= 1 else -1

    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        kind = requests[0].site.kind
        if kind == HEAD:
            return self._eval_heads(requests)
        cfg = self.model.cfg
        if kind == MLP:
            layer = requests[0].site.layer
            return _per_request(lambda x: self.model.mlp_out(layer, x), requests, 2 * cfg.d_mlp)
        if kind == OUTPUT:
            return _per_request(self.model.unembed_logits, requests, cfg.vocab_out)
        raise AdapterError(f"site {requests[0].site.name!r} ({kind}) reads no inputs and cannot be evaluated")

    def _eval_heads(self, requests: list[SiteRequest]) -> list[Tensor]:
        """Pack requests into row blocks (block b holds each head's b-th request) and compute, for each
        run of blocks with the same heads, only those heads: a head asked for often does not make the
        rarely asked heads be computed again and again."""
        B = requests[0].inputs["q"].shape[0]
        per_head: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            per_head.setdefault(r.site.head, []).append(i)
        n_blocks = max(len(v) for v in per_head.values())
        heads_in = [tuple(sorted(h for h, v in per_head.items() if len(v) > b)) for b in range(n_blocks)]
        out: list = [None] * len(requests)
        start = 0
        while start < n_blocks:  # head sets shrink block by block: group equal neighbours
            stop = start
            while stop < n_blocks and heads_in[stop] == heads_in[start]:
                stop += 1
            heads = heads_in[start]
            cells = [[per_head[h][b] for h in heads] for b in range(start, stop)]  # request per (block, slot)
            result = self._attention_cells(requests, cells, heads, B)
            for j, row in enumerate(cells):
                for slot, i in enumerate(row):
                    out[i] = result[j * B:(j + 1) * B, :, slot]
            start = stop
        return out

    def _attention_cells(self, requests, cells, heads, B) -> Tensor:
        """One attention call: row block j, head slot s reads request cells[j][s]."""
        model, cfg = self.model, self.model.cfg
        layer = requests[0].site.layer
        _, pos, d = requests[0].inputs["q"].shape
        shape = (len(cells) * B, pos, len(heads), d)
        normed: dict[int, Tensor] = {}  # LayerNorm each distinct input tensor once, before any copy per head

        def norm(x: Tensor) -> Tensor:
            return normed.setdefault(id(x), model.blocks[layer].ln1(x))  # inputs stay alive in `requests`

        ins = {}
        for p in ("q", "k", "v"):
            if all(all(requests[i].inputs[p] is requests[row[0]].inputs[p] for i in row) for row in cells):
                # every head of a block reads one tensor: project it once for all heads
                firsts = [norm(requests[row[0]].inputs[p]) for row in cells]
                ins[p] = firsts[0] if len(firsts) == 1 else torch.cat(firsts)  # (rows, pos, d_model)
            else:
                ins[p] = torch.stack([torch.stack([norm(requests[i].inputs[p]) for i in row], dim=2)
                                      for row in cells]).reshape(shape)
        key_mask: Optional[Tensor] = None
        if cfg.pad_token_id is not None:
            masks = []
            for row in cells:
                for i in row:
                    if "mask" not in requests[i].direct:
                        raise InterventionError(f"{requests[i].site.name}: this model masks padding, but no mask "
                                                "input was planned.")
                masks.append(torch.stack([model.key_mask(requests[i].direct["mask"]) for i in row], dim=1))
            key_mask = torch.cat(masks)  # (rows, heads, pos)
        index = torch.tensor(heads, device=self.device)
        return model.attention_heads(layer, ins["q"], ins["k"], ins["v"], key_mask, heads=index, normalized=True)


def _per_request(fn, requests: list[SiteRequest], weight_cols: int) -> list[Tensor]:
    """`fn` on each request's input; in one call on the inputs stacked when the weights (`weight_cols`
    columns of d_model) outweigh one request's rows, so large weights (an unembedding of 50k tokens) are
    read once per stage, not once per request."""
    xs = [r.inputs["in"] for r in requests]
    rows = xs[0].shape[0] * xs[0].shape[1]
    if len(xs) == 1 or weight_cols <= rows:
        return [fn(x) for x in xs]
    return list(fn(torch.cat(xs)).split(xs[0].shape[0]))
