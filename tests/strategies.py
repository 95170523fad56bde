"""Random hypotheses over tiny transformers, for property-based tests.

Generated hypotheses are valid by construction most of the time (siblings
claim different sites, wildcard paths only stand alone); the few that the
compiler rejects for overlap are skipped by the tests with `assume`.
"""

from __future__ import annotations

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


def _readers_below(site, n_layers, n_heads, has_mlp):
    """Sites `site` can read (for heads: the same set through q, k and v)."""
    if site == "output":
        layer_lim, include_mlp_of = n_layers, n_layers
    elif site.startswith("head."):
        layer_lim, include_mlp_of = int(site.split(".")[1]), int(site.split(".")[1])
    else:  # mlp.L reads heads of layer L too
        L = int(site.split(".")[1])
        layer_lim, include_mlp_of = L + 1, L
    out = ["embed", "pos_embed"]
    for L in range(layer_lim):
        out += [f"head.{L}.{h}" for h in range(n_heads)]
        if has_mlp and L < include_mlp_of:
            out.append(f"mlp.{L}")
    return out


@st.composite
def hypotheses_for(draw, n_layers=2, n_heads=2, has_mlp=True, n_pos=4, padded=False):
    """A random valid-looking hypothesis about a tiny transformer."""
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
        ups = _readers_below(site, n_layers, n_heads, has_mlp)
        k = draw(st.integers(0, 2 if depth < 2 else 1))
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

    shape = draw(st.sampled_from(["tree", "tree", "tree", "chain", "star"]))
    if shape == "chain":
        target = draw(st.sampled_from(["embed", "pos_embed", "head.0.0"]))
        kids = [Node(name(), f"output <- ... <- {target}", _sampler(draw, n_pos, allow_shared=False))]
    elif shape == "star":
        kids = [Node(name(), "output <- *" + pos_suffix(), _sampler(draw, n_pos, allow_shared=False))]
    else:
        kids = children_of("output", 0, False)
    root = Node("root", "output", exact(), tuple(kids), other_inputs=_other(draw, n_pos))
    try:
        return Hypothesis(root, name="random", policy=policy)
    except HypothesisError:  # e.g. two siblings claiming one mask input: not a valid hypothesis
        reject()
