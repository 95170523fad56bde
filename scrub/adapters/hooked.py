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
from typing import Iterable, Optional

import torch
from torch import Tensor

from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.hooks import capture, plain_values, run_hooked
from scrub.adapters.transformer_sites import HookLayout, check_token_inputs, dims_from_cfg, transformer_graph
from scrub.errors import AdapterError
from scrub.graph import HEAD, MLP, OUTPUT


class HookedAdapter(Adapter):
    def __init__(self, model, layout: Optional[HookLayout] = None):
        layout = layout or HookLayout.from_model(model)
        graph = transformer_graph(layout.n_layers, layout.n_heads, layout.has_mlp, layout.pad_token_id is not None,
                                  layout.causal)
        super().__init__(model, graph)
        self.layout = layout
        self._check_hooks()

    @classmethod
    def accepts(cls, model) -> bool:
        from transformer_lens import HookedRootModule

        return isinstance(model, HookedRootModule)

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
        check_token_inputs(inputs, "this transformer", getattr(self.model, "cfg", None))

    def dims(self):
        return dims_from_cfg(getattr(self.model, "cfg", None))

    # --- plain passes -------------------------------------------------------
    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        def read(what, site, act):
            return act[:, :, site.head] if (what == "out" and site.kind == HEAD) else act

        with self._tl_modes():
            return plain_values(self.model, self.graph, inputs, wants, self.layout.plain_hook, read)

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
        tokens = torch.cat([r.direct["mask"] if "mask" in r.direct else self._dummy_tokens(B, pos)
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
