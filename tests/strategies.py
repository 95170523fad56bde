"""Random hypotheses over tiny transformers, for property-based tests.

Generated hypotheses are valid by construction most of the time (siblings
claim different sites, wildcard paths only stand alone); the few that the
compiler rejects for overlap are skipped by the tests with `assume`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import reject
from hypothesis import strategies as st

from scrub.errors import HypothesisError

from hypotheses import Hypothesis, Node, agree, exact, shared, token_at, unconditional


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

    def children_of(site, depth, parent_is_head):
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
            rel = (f".{port} <- " if port else "") + up + pos_suffix()
            sub = children_of(up, depth + 1, up.startswith("head."))
            nodes.append(Node(name(), rel, _sampler(draw, n_pos), tuple(sub),
                              other_inputs=_other(draw, n_pos) if sub else unconditional()))
        # occasionally a whole-port claim or a wildcard claim, alone
        if parent_is_head and not nodes and draw(st.booleans()):
            nodes.append(Node(name(), "." + draw(st.sampled_from(["q", "k", "v"])), _sampler(draw, n_pos)))
        return nodes

    form = draw(st.sampled_from(["tree", "tree", "tree", "chain", "star"]))
    if form == "chain":
        target = draw(st.sampled_from(shape.inputs + ["head.0.0"]))
        kids = [Node(name(), f"output <- ... <- {target}", _sampler(draw, n_pos, allow_shared=False))]
    elif form == "star":
        kids = [Node(name(), "output <- *" + pos_suffix(), _sampler(draw, n_pos, allow_shared=False))]
    else:
        kids = children_of("output", 0, False)
    root = Node("root", "output", exact(), tuple(kids), other_inputs=_other(draw, n_pos))
    try:
        return Hypothesis(root, name="random", policy=policy)
    except HypothesisError:  # e.g. two siblings claiming one mask input: not a valid hypothesis
        reject()
