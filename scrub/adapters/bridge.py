"""Adapter for TransformerLens 4 `TransformerBridge` models: GPT-2, GPT-NeoX / Pythia, GPT-J, Llama-family
(grouped- and multi-query attention), Mistral, Qwen2/3, Gemma-2/3, OLMo, OLMo-2, and `boot_native` bridges.

The architecture facts come from the bridge's modules (`bridge_layout.py`) and
go into the graph: no `pos_embed` site for rotary models, `mlp.L` beside the
heads of layer L in parallel blocks, a glue site `attn.L` where a norm follows
the attention sum (Gemma-2, OLMo-2), each head's shared key/value head.

Sites are evaluated with the bridge's own modules, so rotary embeddings,
QK-norms, clipping, attention soft caps and sliding windows are the model's:

- heads: the attention norm and `block.attn` on stacked rows, called with the
  arguments the decoder layer passes it on a real forward pass (rotary cos/sin,
  the causal and sliding-window mask), captured once per sequence length;
  hooks copy each request's keys (`hook_rot_k` or `hook_k`) and values
  (`hook_v`) into its query rows, for the request's key/value head. Requests
  share query rows only where that changes no other request's keys or values
  (`_query_blocks`), so heads of one group keep independent key inputs;
- `attn.L`: the post-attention norm of the head sum (plus b_O);
- MLPs: `[post-norm](mlp([norm](x)))`;
- output: final norm, unembedding, then the model's logit transform (Gemma-2's
  final soft cap).

Every new bridge is checked once against its own forward pass before it is
scrubbed (`bridge_check.py`): a model that does not decompose this way is
refused, never scrubbed approximately.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import torch
from torch import Tensor

from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.bridge_layout import BridgeLayout, probe_token, read_layout
from scrub.adapters.hooks import capture, plain_values, run_hooked
from scrub.adapters.transformer_sites import check_token_inputs, dims_from_cfg, head_result, transformer_graph
from scrub.errors import AdapterError
from scrub.graph import ATTN, HEAD, INPUT, MLP, OUTPUT, Site

_DROPPED = {"hidden_states", "cache", "past_key_values", "past_key_value", "layer_past", "use_cache",
            "output_attentions"}


class _ModelFacts:
    """What is learnt about one bridge once: its layout, whether it passed the check, captured call arguments."""

    def __init__(self, layout: BridgeLayout, signature: tuple):
        self.layout = layout
        self.signature = signature
        self.checked = False
        self.call_args: dict = {}


_FACTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _signature(model) -> tuple:
    """Changes when the bridge's structure or modes change (e.g. compatibility mode swaps norms)."""
    b0 = model.blocks[0]
    cfg = model.cfg
    return (tuple((n, type(m).__name__) for n, m in b0.named_children()),
            tuple(bool(getattr(cfg, s, False)) for s in ("use_split_qkv_input", "use_attn_in", "use_attn_result")))


class BridgeAdapter(Adapter):
    def __init__(self, model):
        facts = _FACTS.get(model)
        signature = _signature(model)
        if facts is None or facts.signature != signature:
            facts = _ModelFacts(read_layout(model), signature)
            _FACTS[model] = facts
        self.facts = facts
        self.layout = lay = facts.layout
        graph = transformer_graph(lay.n_layers, lay.n_heads, lay.has_mlp, pad_mask=False, causal=lay.causal,
                                  pos_embed=lay.pos_embed, notes=lay.notes(), parallel=lay.parallel,
                                  attn_sum=lay.attn_post_norm is not None, n_kv_heads=lay.n_kv_heads)
        super().__init__(model, graph)
        if not facts.checked:
            from scrub.adapters.bridge_check import check_decomposition

            check_decomposition(self)
            facts.checked = True

    @classmethod
    def accepts(cls, model) -> bool:
        try:
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError:  # pragma: no cover - transformer-lens is a dependency
            return False
        return isinstance(model, TransformerBridge)

    def check_inputs(self, inputs: Tensor) -> None:
        check_token_inputs(inputs, "a TransformerBridge", self.model.cfg)  # ids within the vocabulary and context

    def dims(self):
        return dims_from_cfg(self.model.cfg)

    # --- plain values -----------------------------------------------------------------------
    def _plain_hook(self, what: str, site: Site) -> tuple[str, tuple[int, int]]:
        """(hook name, firing order) of a site's output ("out") or the stream it reads ("resid")."""
        L = site.layer
        if what == "out":
            if site.kind == INPUT:
                return f"hook_{site.name}", (0, 0 if site.name == "embed" else 1)
            if site.kind == HEAD:
                return f"blocks.{L}.attn.hook_z", (site.stage, 1)
            if site.kind == ATTN:
                return f"blocks.{L}.hook_attn_out", (site.stage, 1)
            if site.kind == MLP:
                return f"blocks.{L}.hook_mlp_out", (site.stage, 2)
        else:
            if site.kind == HEAD:
                return f"blocks.{L}.hook_resid_pre", (site.stage, 0)
            if site.kind == ATTN:
                return f"blocks.{L}.attn.hook_out", (site.stage, 0)
            if site.kind == MLP:
                return self.layout.mlp_read(L), (site.stage, 0)
            if site.kind == OUTPUT:
                return "ln_final.hook_in", (site.stage, 0)
        raise AdapterError(f"no plain value {what!r} for site {site.name!r}")

    def plain(self, inputs: Tensor, wants: Iterable[tuple[str, str]]) -> dict:
        def read(what, site, act):
            if what == "out" and site.kind == HEAD:
                return head_result(act, self.model.blocks[site.layer].attn.W_O, site.head)
            return act

        return plain_values(self.model, self.graph, inputs, wants, self._plain_hook, read)

    # --- site evaluations ----------------------------------------------------------------------
    def evaluate(self, requests: list[SiteRequest]) -> list[Tensor]:
        """Requests of one stage; a parallel block's stage holds heads and an MLP, each group evaluated apart."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.site.kind, r.site.layer), []).append(i)
        out: list = [None] * len(requests)
        for (kind, layer), members in groups.items():
            batch = [requests[i] for i in members]
            if kind == HEAD:
                results = self._eval_heads(layer, batch)
            elif kind in (ATTN, MLP, OUTPUT):
                B = batch[0].inputs["in"].shape[0]
                results = list(self._eval_single(kind, layer, torch.cat([r.inputs["in"] for r in batch])).split(B))
            else:
                raise AdapterError(f"site {batch[0].site.name!r} reads no inputs and cannot be evaluated")
            for i, value in zip(members, results):
                out[i] = value
        return out

    def _eval_single(self, kind: str, layer, x: Tensor) -> Tensor:
        lay = self.layout
        if kind == OUTPUT:
            logits = self.model.unembed(self.model.ln_final(x))
            transform = getattr(getattr(self.model, "adapter", None), "apply_output_logits_transform", None)
            return transform(logits) if transform is not None else logits
        block = self.model.blocks[layer]
        if kind == ATTN:
            b_O = block.attn.b_O
            return getattr(block, lay.attn_post_norm)(x if b_O is None else x + b_O)
        h = getattr(block, lay.mlp_norm)(x) if lay.mlp_norm else x
        h = block.mlp(h)
        return getattr(block, lay.mlp_post_norm)(h) if lay.mlp_post_norm else h

    def call_args(self, n_pos: int, like: Tensor) -> list[tuple[tuple, dict]]:
        """Per layer, the arguments the decoder layer passes to `block.attn` besides the hidden states, on a
        real forward pass of length `n_pos`: rotary cos/sin, position ids, the causal (and sliding-window)
        mask. Captured once per (length, device, dtype); batch-1 tensors broadcast over any rows."""
        key = (n_pos, like.device, like.dtype)
        if key not in self.facts.call_args:
            captured: list = [None] * self.layout.n_layers
            handles = []
            for i, block in enumerate(self.model.blocks):
                def pre(module, args, kwargs, i=i):
                    captured[i] = (tuple(args[1:]), {k: v for k, v in kwargs.items() if k not in _DROPPED})
                handles.append(block.attn.register_forward_pre_hook(pre, with_kwargs=True))
            try:
                self.model(torch.full((1, n_pos), probe_token(self.model.cfg), device=like.device))
            finally:
                for h in handles:
                    h.remove()
            self.facts.call_args[key] = captured
        return self.facts.call_args[key]

    def _eval_heads(self, layer: int, requests: list[SiteRequest]) -> list[Tensor]:
        """Rows: one block per query block (see `_query_blocks`), then the key/value inputs no query block
        holds. Hooks give each query block, per KV head, the keys and values of the rows its requests name."""
        block = self.model.blocks[layer]
        B = requests[0].inputs["q"].shape[0]
        tensors, blocks, where = _query_blocks(requests, self.layout.group)
        rows_of = {q: i for i, (q, _) in enumerate(blocks)}  # a query block's rows hold its query tensor's k and v
        parts = [tensors[q] for q, _ in blocks]
        for _, kv in blocks:
            for pair in kv.values():
                for t in pair:
                    if t not in rows_of:
                        rows_of[t] = len(parts)
                        parts.append(tensors[t])
        x = torch.cat(parts)  # (rows * B, pos, d_model)
        if self.layout.attn_norm:
            x = getattr(block, self.layout.attn_norm)(x)
        sources = [{}, {}]  # keys, values: KV head -> row index per row of x
        for b, (q, kv) in enumerate(blocks):
            for g, pair in kv.items():
                for which, t in enumerate(pair):
                    if t != q:  # a block's own rows already hold its query input's keys and values
                        index = sources[which].setdefault(g, torch.arange(len(x), device=x.device))
                        index[b * B:(b + 1) * B] = torch.arange(rows_of[t] * B, (rows_of[t] + 1) * B, device=x.device)
        store: dict = {}
        hooks = [(f"blocks.{layer}.attn.{self.layout.k_splice}", _splice(sources[0])),
                 (f"blocks.{layer}.attn.hook_v", _splice(sources[1])),
                 (f"blocks.{layer}.attn.hook_z", capture(store, "z"))]
        args, kwargs = self.call_args(x.shape[1], x)[layer]
        run_hooked(self.model, lambda: block.attn(x, *args, **kwargs), hooks)
        z = store["z"]
        W_O = block.attn.W_O
        return [head_result(z[b * B:(b + 1) * B], W_O, r.site.head) for b, r in zip(where, requests)]


def _query_blocks(requests: list[SiteRequest], group: int):
    """Pack head requests into query row blocks.

    A block holds one query input and, per KV head, one (key input, value input) pair. A request joins a
    block with its query input whose entry for the request's KV head is absent or equal to its own; so in
    every block, the heads of one KV group read one key and one value input, and a request's keys and
    values are exactly those it asks for. Inputs are told apart by identity (the executor hands equal input
    expressions of a stage as one tensor). Returns (distinct tensors, blocks as (query tensor, {KV head:
    (key tensor, value tensor)}), each request's block)."""
    tensors: list[Tensor] = []
    ids: dict[int, int] = {}

    def tensor_id(t: Tensor) -> int:
        if id(t) not in ids:
            ids[id(t)] = len(tensors)
            tensors.append(t)
        return ids[id(t)]

    blocks: list[tuple[int, dict]] = []
    where = []
    for r in requests:
        q, k, v = (tensor_id(r.inputs[p]) for p in ("q", "k", "v"))
        g = r.site.head // group
        for b, (bq, kv) in enumerate(blocks):
            if bq == q and kv.get(g, (k, v)) == (k, v):
                kv[g] = (k, v)
                where.append(b)
                break
        else:
            blocks.append((q, {g: (k, v)}))
            where.append(len(blocks) - 1)
    return tensors, blocks, where


def _splice(sources: dict):
    """A hook fn replacing, per KV head g, every row's slice by row `sources[g][row]` of the original."""
    def fn(act: Tensor):
        if not sources:
            return None
        out = act.clone()
        for g, index in sources.items():
            out[:, :, g] = act[index, :, g]
        return out
    return fn
