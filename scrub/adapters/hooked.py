"""Adapter for any HookedRootModule laid out like a TransformerLens transformer.

Everything goes through full forward passes with hooks: plain values are
captured at hook points, and a site is evaluated on chosen inputs by writing
its per-head q/k/v inputs (or MLP input, or final residual) at the hook point
and reading its per-head result, stopping the pass there. It needs per-head
input hooks (`hook_q_input`, ...) and a per-head result hook; `HookLayout`
names them (TransformerLens' names by default) for models that differ.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
from torch import Tensor

from scrub.adapters.base import MASK, OUT, RESID, Adapter, SiteRequest, capture, run_hooked
from scrub.errors import AdapterError, DataError
from scrub.graph import HEAD, INPUT, MLP, OUTPUT, ModelGraph, Site, transformer_graph


@dataclass(frozen=True)
class HookLayout:
    """Where a transformer-shaped HookedRootModule exposes what scrubbing needs.
    `{L}` is replaced by the layer index."""

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
    resid_mid: str = "blocks.{L}.hook_resid_mid"
    mlp_in: str = "blocks.{L}.hook_mlp_in"
    mlp_out: str = "blocks.{L}.hook_mlp_out"
    resid_final: str = "blocks.{last}.hook_resid_post"

    def name(self, field: str, layer: Optional[int] = None) -> str:
        return getattr(self, field).format(L=layer, last=self.n_layers - 1)

    @classmethod
    def from_model(cls, model) -> "HookLayout":
        cfg = getattr(model, "cfg", None)
        try:
            n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
        except (AttributeError, TypeError):
            raise AdapterError(f"cannot read n_layers/n_heads from {type(model).__name__}.cfg; pass "
                               "layout=HookLayout(n_layers=..., n_heads=..., has_mlp=...) to adapt().") from None
        has_mlp = not bool(getattr(cfg, "attn_only", False))
        causal = getattr(cfg, "attention_dir", "causal") != "bidirectional"
        return cls(n_layers, n_heads, has_mlp, getattr(cfg, "pad_token_id", None), causal)


class HookedAdapter(Adapter):
    kind = "hooked"

    def __init__(self, model, layout: Optional[HookLayout] = None):
        layout = layout or HookLayout.from_model(model)
        graph = transformer_graph(layout.n_layers, layout.n_heads, layout.has_mlp, layout.pad_token_id is not None,
                                  layout.causal)
        super().__init__(model, graph)
        self.layout = layout
        self._check_hooks()

    # per-head input and result hooks only fire in these TransformerLens modes
    _modes = ("use_split_qkv_input", "use_attn_result")

    @contextmanager
    def _tl_modes(self):
        """Switch the per-head hook modes on for one call, then restore the user's settings."""
        model = self.model
        before = {}
        for mode in self._modes:
            holder = model if hasattr(model, mode) else getattr(model, "cfg", None)
            if holder is not None and hasattr(holder, mode):
                before[mode] = getattr(holder, mode)
            if hasattr(model, f"set_{mode}"):
                getattr(model, f"set_{mode}")(True)
        try:
            yield
        finally:
            for mode, value in before.items():
                getattr(model, f"set_{mode}")(value)

    def _check_hooks(self) -> None:
        L = self.layout
        wanted = [L.name("embed"), L.name("pos_embed"), L.name("resid_final")]
        for layer in range(L.n_layers):
            fields = ["resid_pre", "q_input", "k_input", "v_input", "result"]
            fields += ["resid_mid", "mlp_in", "mlp_out"] if L.has_mlp else []
            wanted += [L.name(f, layer) for f in fields]
        missing = [w for w in wanted if w not in self.model.hook_dict]
        if missing:
            raise AdapterError(f"{type(self.model).__name__} lacks hook points {missing[:5]}"
                               f"{' ...' if len(missing) > 5 else ''}; scrubbing needs per-head q/k/v input and "
                               "result hooks. Pass a HookLayout naming this model's hooks.")

    def check_inputs(self, inputs: Tensor) -> None:
        if inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
            raise DataError(f"this transformer takes token ids of shape (N, pos); the dataset's inputs have "
                            f"shape {tuple(inputs.shape)} and dtype {inputs.dtype}.")

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model(inputs)

    def key_mask(self, tokens: Tensor) -> Optional[Tensor]:
        pad = self.layout.pad_token_id
        return None if pad is None else tokens != pad

    # --- plain passes -------------------------------------------------------
    def _plain_hook(self, what: str, site: Site) -> tuple[str, tuple[int, int]]:
        """(hook name, firing order) holding `what` of `site`."""
        L = self.layout
        if what == OUT:
            if site.name == "embed":
                return L.name("embed"), (0, 0)
            if site.name == "pos_embed":
                return L.name("pos_embed"), (0, 1)
            if site.kind == HEAD:
                return L.name("result", site.layer), (site.stage, 1)
            if site.kind == MLP:
                return L.name("mlp_out", site.layer), (site.stage, 1)
        if what == RESID:
            if site.kind == HEAD:
                return L.name("resid_pre", site.layer), (site.stage, 0)
            if site.kind == MLP:
                return L.name("resid_mid", site.layer), (site.stage, 0)
            if site.kind == OUTPUT:
                return L.name("resid_final"), (site.stage, 0)
        raise AdapterError(f"no plain value {what!r} for site {site.name!r}")

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        store: dict = {}
        out: dict = {}
        hooks, order = [], {}
        want_logits = False
        for what, name in set(wants):
            site = self.graph.site(name)
            if what == MASK:
                out[(what, name)] = self.key_mask(inputs)
            elif what == OUT and site.kind == OUTPUT:
                want_logits = True
            else:
                hook, rank = self._plain_hook(what, site)
                order[hook] = rank
                hooks.append((hook, capture(store, hook)))
        hooks = list(dict(hooks).items())
        stop = None if want_logits or not order else max(order, key=order.get)
        with self._tl_modes():
            logits = run_hooked(self.model, lambda: self.model(inputs), hooks, stop_after=stop)
        for what, name in set(wants):
            site = self.graph.site(name)
            if what == MASK:
                continue
            if what == OUT and site.kind == OUTPUT:
                out[(what, name)] = logits
                continue
            act = store[self._plain_hook(what, site)[0]]
            out[(what, name)] = act[:, :, site.head] if (what == OUT and site.kind == HEAD) else act
        return out

    # --- evaluating sites on chosen inputs ------------------------------------
    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        kind = requests[0].site.kind
        if kind == HEAD:
            return self._eval_heads(requests)
        if kind == MLP:
            return self._eval_single(requests, "mlp_in", "mlp_out")
        if kind == OUTPUT:
            return self._eval_single(requests, "resid_final", None)
        raise AdapterError(f"site {requests[0].site.name!r} ({kind}) reads no inputs and cannot be evaluated")

    def _dummy_tokens(self, rows: int, pos: int) -> Tensor:
        return torch.zeros(rows, pos, dtype=torch.long, device=self.device)

    def _eval_heads(self, requests: list[SiteRequest]) -> list[Tensor]:
        """One pass: request r occupies rows [r*B, (r+1)*B); its head's q/k/v
        inputs are written there; every other head in those rows is ignored."""
        layer = requests[0].site.layer
        B, pos = requests[0].inputs["q"].shape[:2]
        tokens = torch.cat([r.mask_inputs if r.mask_inputs is not None else self._dummy_tokens(B, pos)
                            for r in requests])
        store: dict = {}

        def writer(port: str):
            def fn(act: Tensor) -> Tensor:
                act = act.clone()
                for i, r in enumerate(requests):
                    act[i * B:(i + 1) * B, :, r.site.head] = r.inputs[port]
                return act
            return fn

        L = self.layout
        hooks = [(L.name(f"{p}_input", layer), writer(p)) for p in ("q", "k", "v")]
        hooks.append((L.name("result", layer), capture(store, "result")))
        with self._tl_modes():
            run_hooked(self.model, lambda: self.model(tokens), hooks, stop_after=L.name("result", layer))
        result = store["result"]
        return [result[i * B:(i + 1) * B, :, r.site.head] for i, r in enumerate(requests)]

    def _eval_single(self, requests: list[SiteRequest], write: str, read: Optional[str]) -> list[Tensor]:
        layer = requests[0].site.layer
        x = torch.cat([r.inputs["in"] for r in requests])
        B = requests[0].inputs["in"].shape[0]
        store: dict = {}
        L = self.layout
        hooks = [(L.name(write, layer), lambda act: x)]
        if read:
            hooks.append((L.name(read, layer), capture(store, "out")))
        with self._tl_modes():
            out = run_hooked(self.model, lambda: self.model(self._dummy_tokens(*x.shape[:2])), hooks,
                             stop_after=L.name(read, layer) if read else None)
        out = store["out"] if read else out
        return [out[i * B:(i + 1) * B] for i in range(len(requests))]
