"""The judge: a slow, deliberately plain implementation of docs' scrubbing semantics.

It shares no machinery with the engine's compiler or executor:

- it walks concrete paths of the treeified model at the level of single
  positions (`output@i <- head.1.0@i (k) <- head.0.1@j ...`), one copy at a time;
- it decides who claims a copy by matching the whole concrete path against
  every node's path pattern with its own small recursive matcher (a path
  visiting an excluded site anywhere does not fit), and a child only claims
  paths with a prefix its parent claims; where a parent and its child both
  claim a copy, the child's claim holds;
- a rewritten copy is the estimate called on the node's data plus the site's
  plain output minus the estimate on the residual's data, each computed here;
- a reader copy's input is built as the explicit sum of every upstream copy's
  value plus the model's constant terms, never as "residual minus difference";
- every evaluated copy is one full forward pass of the model with hooks that
  overwrite the site's inputs.

It replays the data the engine drew (`result.node_indices()`), so engine and
reference can be compared to float tolerance. Sampling itself is judged by its
own tests. Only for tiny models: the cost is exponential in depth.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch

from hypotheses.nodes import Hypothesis
from hypotheses.paths import ANY_CHAIN


# --- the model, seen through hooks --------------------------------------------------

@dataclass(frozen=True)
class RSite:
    name: str
    kind: str  # input / head / attn / mlp / output
    stage: int
    layer: Optional[int] = None
    head: Optional[int] = None
    additive: bool = True
    reads: str = "resid"  # the sum its inputs are read from
    writes: str = "resid"  # the sum its output is added to

    def ports(self, padded: bool) -> tuple:
        if self.kind == "head":
            return ("q", "k", "v", "mask") if padded else ("q", "k", "v")
        return ("in",) if self.kind in ("attn", "mlp", "output") else ()


def transformer_sites(n_layers, n_heads, has_mlp, padded, pos_embed=True, parallel=False, attn_sum=False):
    """Sites of a residual transformer. parallel: the MLP reads the block input (beside the heads);
    attn_sum: the heads of layer L add into attn.L (a norm of their sum), which alone adds to the residual."""
    sites = [RSite("embed", "input", 0)] + ([RSite("pos_embed", "input", 0)] if pos_embed else [])
    if padded:
        sites.append(RSite("pad_mask", "input", 0, additive=False))
    for L in range(n_layers):
        heads_stage = 3 * L + 1
        writes = f"attn.{L}" if attn_sum else "resid"
        sites += [RSite(f"head.{L}.{h}", "head", heads_stage, L, h, writes=writes) for h in range(n_heads)]
        if attn_sum:
            sites.append(RSite(f"attn.{L}", "attn", heads_stage + 1, L, reads=writes))
        if has_mlp:
            sites.append(RSite(f"mlp.{L}", "mlp", heads_stage if parallel else heads_stage + 2, L))
    sites.append(RSite("output", "output", 3 * n_layers + 1))
    return sites


def put(value, head=None):
    """A TransformerLens hook that overwrites the activation (one head's slice when `head` is given)."""
    def hook(act, hook):
        act = act.clone()
        if head is None:
            act[:] = value
        else:
            act[:, :, head] = value
        return act
    return hook


class ScrubTransformerOps:
    """Our own transformer: per-head input and result hooks, TransformerLens names."""

    positional = True

    def __init__(self, model):
        self.model = copy.deepcopy(model).eval()
        self.model.set_use_split_qkv_input(True)
        self.model.set_use_attn_result(True)
        cfg = model.cfg
        self.padded = cfg.pad_token_id is not None
        self.last = cfg.n_layers - 1
        self.sites = transformer_sites(cfg.n_layers, cfg.n_heads, not cfg.attn_only, self.padded)

    def plain(self, tokens):
        logits, cache = self.model.run_with_cache(tokens)
        out = {("out", "embed"): cache["hook_embed"], ("out", "pos_embed"): cache["hook_pos_embed"],
               ("out", "output"): logits, ("resid", "output"): cache[f"blocks.{self.last}.hook_resid_post"]}
        for s in self.sites:
            if s.kind == "head":
                out[("out", s.name)] = cache[f"blocks.{s.layer}.attn.hook_result"][:, :, s.head]
                out[("resid", s.name)] = cache[f"blocks.{s.layer}.hook_resid_pre"]
            elif s.kind == "mlp":
                out[("out", s.name)] = cache[f"blocks.{s.layer}.hook_mlp_out"]
                out[("resid", s.name)] = cache[f"blocks.{s.layer}.hook_resid_mid"]
        return out

    def evaluate(self, site, inputs, mask_tokens):
        N, P = next(iter(inputs.values())).shape[:2]
        tokens = mask_tokens if mask_tokens is not None else torch.zeros(N, P, dtype=torch.long)
        got = {}

        def keep(act, hook):
            got["v"] = act

        if site.kind == "head":
            L = site.layer
            hooks = [(f"blocks.{L}.hook_{p}_input", put(inputs[p], site.head)) for p in ("q", "k", "v")]
            hooks.append((f"blocks.{L}.attn.hook_result", keep))
            self.model.run_with_hooks(tokens, fwd_hooks=hooks)
            return got["v"][:, :, site.head]
        if site.kind == "mlp":
            self.model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{site.layer}.hook_mlp_in", put(inputs["in"])),
                                                         (f"blocks.{site.layer}.hook_mlp_out", keep)])
            return got["v"]
        return self.model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{self.last}.hook_resid_post",
                                                             put(inputs["in"]))])


class BridgeOps:
    """A TransformerLens 4 bridge, driven only through full forward passes with hooks: per-head inputs
    are emulated with one forward pass per input (reading that head's query, or its key/value head's key
    and value) and one more that writes them. The class attributes state the family's architecture, by
    hand, for the judge (nothing is read from scrub's adapter); this base is GPT-2-shaped."""

    positional = True
    pos_embed = True  # a learned positional embedding
    parallel = False  # attention and MLP both read the block input
    attn_sum = False  # a norm follows the attention sum: heads write into attn.L
    qk_hooks = ("hook_q", "hook_k")  # where a head's query and a key/value head's key can be overwritten

    def __init__(self, model):
        self.model = model.eval()
        cfg = model.cfg
        self.padded = False
        self.group = cfg.n_heads // (getattr(cfg, "n_key_value_heads", None) or cfg.n_heads)
        self.mlp_read = "hook_resid_pre" if self.parallel else "hook_resid_mid"
        self.sites = transformer_sites(cfg.n_layers, cfg.n_heads, not getattr(cfg, "attn_only", False), False,
                                       self.pos_embed, self.parallel, self.attn_sum)

    def plain(self, tokens):
        logits, cache = self.model.run_with_cache(tokens)
        out = {("out", "embed"): cache["hook_embed"], ("out", "output"): logits,
               ("resid", "output"): cache["ln_final.hook_in"]}
        if self.pos_embed:
            out[("out", "pos_embed")] = cache["hook_pos_embed"]
        for s in self.sites:
            if s.kind == "head":
                W_O = self.model.blocks[s.layer].attn.W_O[s.head]
                out[("out", s.name)] = cache[f"blocks.{s.layer}.attn.hook_z"][:, :, s.head] @ W_O
                out[("resid", s.name)] = cache[f"blocks.{s.layer}.hook_resid_pre"]
            elif s.kind == "attn":
                out[("out", s.name)] = cache[f"blocks.{s.layer}.hook_attn_out"]
                out[("resid", s.name)] = cache[f"blocks.{s.layer}.attn.hook_out"]
            elif s.kind == "mlp":
                out[("out", s.name)] = cache[f"blocks.{s.layer}.hook_mlp_out"]
                out[("resid", s.name)] = cache[f"blocks.{s.layer}.{self.mlp_read}"]
        return out

    def evaluate(self, site, inputs, mask_tokens):
        N, P = next(iter(inputs.values())).shape[:2]
        tokens = torch.zeros(N, P, dtype=torch.long)
        got = {}

        def keep(name):
            def hook(act, hook):
                got[name] = act
            return hook

        L = site.layer
        if site.kind == "head":
            h = site.head
            slots = {"q": (self.qk_hooks[0], h), "k": (self.qk_hooks[1], h // self.group),
                     "v": ("hook_v", h // self.group)}
            for p, (name, slot) in slots.items():
                self.model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{L}.hook_resid_pre", put(inputs[p])),
                                                             (f"blocks.{L}.attn.{name}", keep(p))])
            hooks = [(f"blocks.{L}.attn.{name}", put(got[p][:, :, slot], slot)) for p, (name, slot) in slots.items()]
            hooks.append((f"blocks.{L}.attn.hook_z", keep("z")))
            self.model.run_with_hooks(tokens, fwd_hooks=hooks)
            return got["z"][:, :, h] @ self.model.blocks[L].attn.W_O[h]
        if site.kind in ("attn", "mlp"):
            write, read = (("attn.hook_out", "hook_attn_out") if site.kind == "attn" else
                           (self.mlp_read, "hook_mlp_out"))
            self.model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{L}.{write}", put(inputs["in"])),
                                                         (f"blocks.{L}.{read}", keep("o"))])
            return got["o"]
        return self.model.run_with_hooks(tokens, fwd_hooks=[("ln_final.hook_in", put(inputs["in"]))])


class GPT2Ops(BridgeOps):
    """GPT-2 from Hugging Face: learned positions, LayerNorm, sequential blocks."""


class NeoXOps(BridgeOps):
    """GPT-NeoX / Pythia: rotary inside attention, attention and MLP in parallel on the block input."""

    pos_embed = False
    parallel = True


class GPTJOps(NeoXOps):
    """GPT-J: like NeoX, with one LayerNorm shared by attention and MLP (the bridge's own modules apply it)."""


class LlamaOps(BridgeOps):
    """Llama (grouped- and multi-query attention): rotary; queries and keys are written after rotary."""

    pos_embed = False
    qk_hooks = ("hook_rot_q", "hook_rot_k")


class MistralOps(LlamaOps):
    """Mistral: Llama-shaped, sliding-window attention (the model's own mask in every pass)."""


class Qwen2Ops(LlamaOps):
    """Qwen2: Llama-shaped with q/k/v biases, sliding windows on upper layers."""


class OlmoOps(LlamaOps):
    """OLMo: non-parametric LayerNorm, q/k/v clipping before rotary."""


class Gemma2Ops(LlamaOps):
    """Gemma-2: RMSNorm before and after attention and MLP, soft caps, sliding windows; the heads' sum is
    normalised before it joins the residual stream (attn.L sites)."""

    attn_sum = True


class Olmo2Ops(Gemma2Ops):
    """OLMo-2: norms only after attention and MLP; one QK-norm over all heads (written after it)."""


class Qwen3Ops(LlamaOps):
    """Qwen3: Llama-shaped with a QK-norm per head (queries and keys written after it)."""


class Gemma3Ops(Gemma2Ops):
    """Gemma-3 (text): Gemma-2's layout with per-head QK-norms and per-layer rotary bases."""


class AdditiveOps:
    """out = readout(sum of coef * term(x)), computed directly."""

    positional = False

    def __init__(self, terms, readout=None):
        self.terms = terms  # name -> (fn, coef)
        self.readout = readout or (lambda s: s)
        self.padded = False
        self.sites = [RSite(n, "input", 0) for n in terms] + [RSite("output", "output", 1)]

    def _term(self, name, x):
        fn, coef = self.terms[name]
        v = coef * fn(x)
        return v.reshape(v.shape[0], 1, -1)

    def plain(self, x):
        out = {("out", n): self._term(n, x) for n in self.terms}
        out[("resid", "output")] = sum(out[("out", n)] for n in self.terms)
        out[("out", "output")] = self.readout(out[("resid", "output")][:, 0]).reshape(len(x), 1, -1)
        return out

    def evaluate(self, site, inputs, mask_tokens):
        x = inputs["in"]
        return self.readout(x[:, 0]).reshape(x.shape[0], 1, -1)


# --- the semantics -------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    site: str
    port: Optional[str]  # the input through which this copy reads the next step (None for the last)
    pos: int


WHOLE_SITES = {"pad_mask"}  # read whole: a hop that names positions never lands on one


def _hop_fits(hop, step, has_next):
    if hop.kind == ANY_CHAIN:
        return True
    if hop.kind == "site" and hop.site != step.site:
        return False
    if hop.positions is not None and step.site in WHOLE_SITES:
        return False
    if hop.positions is not None and step.pos is not None and step.pos not in hop.positions:
        return False
    if hop.port is not None and hop.port != "in" and has_next and hop.port != step.port:
        return False
    return True


def full_match(hops, path, i=0, j=0) -> bool:
    """Does the pattern `hops[i:]` match the concrete path `path[j:]` exactly?"""
    if i == len(hops):
        return j == len(path)
    hop = hops[i]
    if hop.kind == ANY_CHAIN:  # zero sites, or this site and maybe more
        return full_match(hops, path, i + 1, j) or (j < len(path) and full_match(hops, path, i, j + 1))
    if j == len(path):
        return False
    return _hop_fits(hop, path[j], j + 1 < len(path)) and full_match(hops, path, i + 1, j + 1)


class Reference:
    def __init__(self, ops, hypothesis: Hypothesis, inputs: torch.Tensor, result, data=None):
        self.ops = ops
        self.inputs = inputs
        self.data = data
        self.sites = {s.name: s for s in ops.sites}
        self.infos = hypothesis.infos()
        self.n_pos = inputs.shape[1] if ops.positional else 1
        self.idx = result.node_indices()
        self.ref_idx = torch.as_tensor(result.reference)
        self.patterns = {name: [self._resolve(p) for p in info.paths] for name, info in self.infos.items()}
        self.excluded = {name: [set(p.excluding) for p in info.paths] for name, info in self.infos.items()}
        self._claims_cache = {}
        # Without any '@' in the hypothesis every claim is the same at every position, so a copy's value at
        # all positions follows one rule: walk site-level paths (pos=None, values (N, pos, d)). With positions,
        # walk single positions (values (N, d)).
        self.by_position = any(h.positions is not None for pats in self.patterns.values()
                               for hops in pats for h in hops)
        self._plain_cache = {}
        # constant terms of each reader's input: resid - sum of upstream outputs (bias terms)
        plain0 = self.plain(self.ref_idx)
        self.const = {}
        for s in ops.sites:
            if s.kind in ("head", "attn", "mlp", "output"):
                total = sum(plain0[("out", u.name)] for u in self.upstream(s))
                self.const[s.name] = plain0[("resid", s.name)] - total

    def _resolve(self, path):
        hops = []
        for h in path.hops:
            pos = None if h.positions is None else tuple(p % self.n_pos for p in h.positions)
            hops.append(type(h)(h.kind, h.site, h.port, pos))
        return tuple(hops)

    def upstream(self, site, port="in"):
        if port == "mask":
            return [self.sites["pad_mask"]]
        return [u for u in self.ops.sites if u.additive and u.stage < site.stage and u.writes == site.reads]

    def plain(self, idx):
        key = tuple(idx.tolist())
        if key not in self._plain_cache:
            with torch.no_grad():
                self._plain_cache[key] = self.ops.plain(self.inputs[idx])
        return self._plain_cache[key]

    def fits(self, name, path) -> bool:
        """Does one of the node's patterns match this concrete path, which visits none of its excluded sites?"""
        return any(full_match(hops, path) and not any(step.site in excluded for step in path)
                   for hops, excluded in zip(self.patterns[name], self.excluded[name]))

    def claims(self, name, path) -> bool:
        """The node claims this path: it fits, and (below the root) some prefix of it is the parent's claim."""
        key = (name, path)
        if key not in self._claims_cache:
            parent = self.infos[name].parent
            self._claims_cache[key] = self.fits(name, path) and (
                parent is None or any(self.claims(parent, path[:k]) for k in range(1, len(path) + 1)))
        return self._claims_cache[key]

    def claimant(self, path):
        """The node whose claim holds at this copy: of the nodes claiming it, the innermost."""
        owners = sorted((n for n in self.patterns if self.claims(n, path)), key=lambda n: self.infos[n].depth)
        for outer, inner in zip(owners, owners[1:]):
            assert self.infos[inner].parent == outer, f"{path} claimed by {owners}"
        return owners[-1] if owners else None

    def deepest_claim(self, path):
        for k in range(len(path), 0, -1):
            owner = self.claimant(path[:k])
            if owner is not None:
                return k, owner
        raise AssertionError("the root claims the output")

    def claim_below(self, path) -> bool:
        """Is any strict extension of this concrete path claimed by some node?"""
        def explore(p):
            last = p[-1]
            site = self.sites[last.site]
            for port in site.ports(self.ops.padded):
                for u in self.upstream(site, port):
                    for j in self.read_positions(port, last.pos):
                        ext = p[:-1] + (Step(last.site, port, last.pos), Step(u.name, None, j))
                        if self.claimant(ext) is not None:
                            return True
                        if self._could_continue(ext) and explore(ext):
                            return True
            return False

        return explore(path)

    def read_positions(self, port, pos):
        """Positions of an upstream site that a reader copy at `pos` reads through `port`."""
        if not self.by_position or port == "mask":
            return [None] if not self.by_position else [0]
        return [pos] if port in ("q", "in") else list(range(self.n_pos))

    def at(self, tensor, pos):
        return tensor if pos is None else tensor[:, pos]

    def _could_continue(self, path):
        """Cheap pruning: some pattern matches a prefix of a longer path through here."""
        for pats in self.patterns.values():
            for hops in pats:
                if _prefix_match(hops, path):
                    return True
        return False

    def datum(self, owner, path, edge):
        """The datum of an unclaimed edge below `owner`'s claim."""
        info = self.infos[owner]
        if type(info.node.other_inputs).__name__ == "Exact":
            return self.idx[owner]["x"]
        if info.policy == "shared":
            return self.idx[owner]["other"]
        return self.idx[owner]["other_edges"][edge]  # a missing draw is a failure, not a fallback

    def site_key(self, path):
        key = path[0].site
        for prev, step in zip(path, path[1:]):
            key += f".{prev.port} <- {step.site}"
        return key

    def value(self, path):
        """Value (N, d) of the copy at the end of this concrete path."""
        k, owner = self.deepest_claim(path)
        last = path[-1]
        node = self.infos[owner].node
        if node.is_leaf:
            if node.rewrite is not None and k == len(path):
                return self.at(self.rewritten(path, owner), last.pos)
            return self.at(self.plain(torch.as_tensor(self.idx[owner]["x"]))[("out", last.site)], last.pos)
        if self.sites[last.site].kind != "input" and (k == len(path) or self.claim_below(path)):
            return self.evaluate(path, owner)
        d = self.datum(owner, path, self.site_key(path))
        return self.at(self.plain(torch.as_tensor(d))[("out", last.site)], last.pos)

    def rewritten(self, path, owner):
        """estimate(x) + site(y) - estimate(y), all positions (N, pos, d)."""
        rw = self.infos[owner].node.rewrite
        site = path[-1].site
        x = torch.as_tensor(self.idx[owner]["x"])
        plain_x = self.plain(x)[("out", site)]
        if rw.residual == "exact":
            return plain_x
        out = self.estimate(rw.estimate, x, plain_x.shape)
        if rw.residual == "drop":
            return out
        if rw.residual_sampler is not None:
            y = self.idx[owner]["residual"]
        else:
            y = self.datum(self.infos[owner].parent, path, self.site_key(path) + " (residual)")
        y = torch.as_tensor(y)
        return out + self.plain(y)[("out", site)] - self.estimate(rw.estimate, y, plain_x.shape)

    def estimate(self, estimate, idx, shape):
        with torch.no_grad():
            v = estimate(self.data.take(idx), getattr(self.ops, "model", None)).float()
        if v.dim() == 2:
            v = v[:, None, :]
        return v.expand(shape).clone()

    def evaluate(self, path, owner):
        last = path[-1]
        site = self.sites[last.site]
        inputs, mask_tokens = {}, None
        for port in site.ports(self.ops.padded):
            if port == "mask":
                mpath = path[:-1] + (Step(last.site, "mask", last.pos),
                                     Step("pad_mask", None, 0 if self.by_position else None))
                k, o = self.deepest_claim(mpath)
                d = self.idx[o]["x"] if (k == len(mpath) and self.infos[o].node.is_leaf) else \
                    self.datum(o, mpath, self.site_key(mpath))
                mask_tokens = self.inputs[torch.as_tensor(d)]
                continue
            x = self.const[site.name].clone()
            for j in self.read_positions(port, last.pos):
                for u in self.upstream(site, port):
                    v = self.value(path[:-1] + (Step(last.site, port, last.pos), Step(u.name, None, j)))
                    if j is None:
                        x += v
                    else:
                        x[:, j] += v
            inputs[port] = x
        with torch.no_grad():
            out = self.ops.evaluate(site, inputs, mask_tokens)
        return self.at(out, last.pos)

    def run(self):
        if not self.by_position:
            return self.value((Step("output", None, None),))
        return torch.stack([self.value((Step("output", None, i),)) for i in range(self.n_pos)], dim=1)


def _prefix_match(hops, path, i=0, j=0) -> bool:
    """Can `hops[i:]` match `path[j:]` followed by at least one more step?"""
    if j == len(path):
        return i < len(hops) and not all(h.kind == ANY_CHAIN for h in hops[i:])
    if i == len(hops):
        return False
    hop = hops[i]
    if hop.kind == ANY_CHAIN:
        return _prefix_match(hops, path, i + 1, j) or _prefix_match(hops, path, i, j + 1)
    return _hop_fits(hop, path[j], j + 1 < len(path)) and _prefix_match(hops, path, i + 1, j + 1)


def reference_outputs(ops, hypothesis, data, result) -> torch.Tensor:
    """y_scrub for every reference datum, by the reference semantics."""
    return Reference(ops, hypothesis, data.inputs, result, data).run()
