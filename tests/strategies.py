"""Random hypotheses over tiny transformers, for property-based tests.

Generated hypotheses are valid by construction most of the time (siblings
claim different sites, wildcard paths only stand alone); the few that the
compiler rejects for overlap are skipped by the tests with `assume`. They use
every part of the path language: ports, positions, `*`, `...`, exclusions
(`(not SITE)`), parents claiming `*@p` whose children open that last hop with
absolute paths, and leaves that rewrite their sites (every residual mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import reject
from hypothesis import strategies as st

from scrub.errors import HypothesisError

from hypotheses import Hypothesis, Node, agree, exact, shared, token_at, unconditional
from hypotheses.rewrites import function_estimate, rewrite, zero

def _table(model) -> torch.Tensor:
    """token (0..7) -> a fixed random vector of the model's width."""
    return torch.randn(8, model.cfg.d_model, generator=torch.Generator().manual_seed(7))


def token_table(batch, model):
    """A test estimate: a fixed vector per token at each position, (batch, pos, 16)."""
    return _table(model)[batch.inputs.clamp(max=7)]


def first_token_table(batch, model):
    """A test estimate giving (batch, d): the same value at every position."""
    return 0.5 * _table(model)[batch.inputs[:, 0].clamp(max=7)]


def _rewrite(draw, whole_output=False):
    estimate = draw(st.sampled_from([function_estimate(token_table), function_estimate(first_token_table), zero()]))
    residual = draw(st.sampled_from(["resample", "resample", "exact", "drop", unconditional(), agree(token_at(0))]))
    if whole_output and estimate == zero() and residual == "drop":
        residual = "resample"  # zero-ablating all of a site's input (the output's, a head's whole q) leaves its
        # LayerNorm a vector of rounding errors, which it scales up: a numerical artefact, not a semantic question
    return rewrite(estimate, residual)


def _sampler(draw, n_pos, allow_shared=True):
    kind = draw(st.sampled_from(["exact", "unconditional", "agree", "agree", "shared"] if allow_shared
                                else ["exact", "unconditional", "agree", "agree"]))
    if kind == "exact":
        return exact()
    if kind == "unconditional":
        return unconditional()
    if kind == "shared":  # every member of the group must use the same sampler
        return shared("g", agree(token_at(0)))
    return agree(token_at(draw(st.integers(0, n_pos - 1))))


def _other(draw, n_pos):
    return draw(st.sampled_from([unconditional(), unconditional(), agree(token_at(0)), exact()])) \
        if n_pos else unconditional()


@dataclass(frozen=True)
class Shape:
    """The site graph of a tiny transformer, as the strategies see it.

    parallel: mlp.L reads the block input (beside the heads of layer L); attn_sum: the heads of layer L
    write into attn.L, which alone writes into the residual stream."""

    n_layers: int = 2
    n_heads: int = 2
    has_mlp: bool = True
    pos_embed: bool = True
    parallel: bool = False
    attn_sum: bool = False

    @property
    def inputs(self) -> list:
        return ["embed"] + (["pos_embed"] if self.pos_embed else [])

    def attention(self, layer: int) -> list:
        """What layer `layer`'s attention adds to the residual stream."""
        return [f"attn.{layer}"] if self.attn_sum else [f"head.{layer}.{h}" for h in range(self.n_heads)]

    def before(self, layer: int) -> list:
        """Sites writing into the residual stream below layer `layer`."""
        out = list(self.inputs)
        for L in range(layer):
            out += self.attention(L) + ([f"mlp.{L}"] if self.has_mlp else [])
        return out

    def readers(self, site: str) -> list:
        """Sites `site` reads (for heads: the same set through q, k and v)."""
        if site == "output":
            return self.before(self.n_layers)
        kind, layer = site.split(".")[0], int(site.split(".")[1])
        if kind == "head":
            return self.before(layer)
        if kind == "attn":
            return [f"head.{layer}.{h}" for h in range(self.n_heads)]
        return self.before(layer) + ([] if self.parallel else self.attention(layer))  # mlp


@st.composite
def hypotheses_for(draw, n_layers=2, n_heads=2, has_mlp=True, n_pos=4, padded=False, shape=None):
    """A random valid-looking hypothesis about a tiny transformer (`shape` overrides the first three)."""
    shape = shape or Shape(n_layers, n_heads, has_mlp)
    policy = draw(st.sampled_from(["shared", "independent"]))
    counter = [0]

    def name():
        counter[0] += 1
        return f"n{counter[0]}"

    def pos_suffix():
        if draw(st.integers(0, 4)) == 0:
            return "@" + str(draw(st.sampled_from([0, n_pos - 1, -1, 1])))
        return ""

    everything = shape.readers("output")

    def exclusion(avoid):
        """Occasionally ' (not SITE)' for a site other than `avoid`."""
        if draw(st.integers(0, 3)):
            return ""
        return f" (not {draw(st.sampled_from([u for u in everything if u != avoid]))})"

    def leaf_extras(port, whole_output=False):
        """A leaf sometimes rewrites what it claims (never a padding mask)."""
        if port == "mask" or not draw(st.integers(0, 3)) == 0:
            return {}
        return {"rewrite": _rewrite(draw, whole_output)}

    def hop(site, port, pos):
        return site + (f".{port}" if port else "") + pos

    def opened(prefix, site, port, depth):
        """A parent claiming `*@p` through `port`, whose children repeat its hops but the last and continue
        (any chain to a site below, or one named site at p)."""
        p = draw(st.sampled_from([0, 1, n_pos - 1]))
        here = " <- ".join(prefix[:-1] + [hop(site, port, prefix[-1][len(site):])])
        ups = shape.readers(site)
        kids = []
        targets = draw(st.lists(st.sampled_from(ups), min_size=1, max_size=2, unique=True))
        for target in targets:
            if draw(st.booleans()):
                others = [t for t in targets if t != target]  # a chain through a sibling's claim would overlap it
                path = f"{here} <- ... <- {target}" + (f" (not {others[0]})" if others else exclusion(target))
            else:
                path = f"{here} <- {target}@{p}"
            kids.append(Node(name(), path, _sampler(draw, n_pos), **leaf_extras(None)))
        rel = (f".{port} <- " if port else "") + f"*@{p}"
        return Node(name(), rel, _sampler(draw, n_pos), tuple(kids), other_inputs=_other(draw, n_pos))

    def children_of(site, depth, parent_is_head, prefix):
        if depth >= 3 or site in ("embed", "pos_embed"):
            return []
        ups = shape.readers(site)
        k = draw(st.integers(0, min(len(ups), 2 if depth < 2 else 1)))
        picked = draw(st.lists(st.sampled_from(ups), min_size=k, max_size=k, unique=True)) if ups else []
        nodes = []
        for up in picked:
            ports = ["q", "k", "v", None] + (["mask"] if padded else []) if parent_is_head else [None]
            port = draw(st.sampled_from(ports))
            if port == "mask":
                nodes.append(Node(name(), ".mask", _sampler(draw, n_pos)))
                continue
            if depth >= 1 and draw(st.integers(0, 4)) == 0:
                nodes.append(opened(prefix, site, port, depth))
                break  # the opened claim takes the whole of this reader's positions p: no sibling beside it
            pos = pos_suffix()
            rel = (f".{port} <- " if port else "") + up + pos
            sub = children_of(up, depth + 1, up.startswith("head."), prefix + [up + pos])
            if not sub:
                rel += exclusion(up) if depth == 0 else ""
            nodes.append(Node(name(), rel, _sampler(draw, n_pos), tuple(sub),
                              other_inputs=_other(draw, n_pos) if sub else unconditional(),
                              **({} if sub else leaf_extras(port))))
        # occasionally a whole-port claim or a wildcard claim, alone
        if parent_is_head and not nodes and draw(st.booleans()):
            port = draw(st.sampled_from(["q", "k", "v"]))
            nodes.append(Node(name(), "." + port, _sampler(draw, n_pos),  # the whole input: never all zero
                              **leaf_extras(port, whole_output=True)))
        return nodes

    form = draw(st.sampled_from(["tree", "tree", "tree", "chain", "star"]))
    if form == "chain":
        target = draw(st.sampled_from(shape.inputs + ["head.0.0"]))
        path = f"output <- ... <- {target}" + exclusion(target)
        only_input = shape.inputs == [target] and "(not" not in path  # a rotary model's only input, every path
        kids = [Node(name(), path, _sampler(draw, n_pos, allow_shared=False),
                     **leaf_extras(None, whole_output=only_input))]
    elif form == "star":
        kids = [Node(name(), "output <- *" + pos_suffix(), _sampler(draw, n_pos, allow_shared=False),
                     **leaf_extras(None, whole_output=True))]
    else:
        kids = children_of("output", 0, False, ["output"])
    root = Node("root", "output", exact(), tuple(kids), other_inputs=_other(draw, n_pos))
    try:
        return Hypothesis(root, name="random", policy=policy)
    except HypothesisError:  # e.g. two siblings claiming one mask input: not a valid hypothesis
        reject()
