"""The hypothesis part of a spec file: nodes, samplers and features as plain data, both ways.

    hypothesis:
      name: output                     # the root claims the output
      other_inputs: unconditional
      children:
        - name: induction heads
          paths: [output <- head.1.0, output <- head.1.2]
          children:
            - name: previous token
              paths: .k <- head.0.2
              sampler: {agree: {token_at: -2}}
            - each_position: "0:4"           # one node per position; {i} is the position
              name: value at {i}
              paths: .v <- *@{i}
              rewrite: {estimate: zero, residual: drop}   # the site computes an estimate (here: 0)

Samplers and features are read and written by the kinds themselves, from the
registries `hypotheses.samplers.SAMPLERS` and `hypotheses.features.FEATURES`
(see docs/spec-format.md for the list); this module only walks the nodes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scrub.app.spec import position_groups
from scrub.app.spec.yamlpos import Key, Located

from hypotheses.features import NotSerializable
from hypotheses.nodes import POLICIES, Hypothesis, Node
from hypotheses.positions import PositionGroup
from hypotheses.registry import SpecValue
from hypotheses.rewrites import Rewrite
from hypotheses.samplers import SAMPLERS, Exact, Unconditional

NODE_KEYS = ("name", "paths", "sampler", "other_inputs", "policy", "rewrite", "children")


# --- spec -> Python --------------------------------------------------------------------

def parse_hypothesis(doc: Located, key: Key, name: str, policy: str) -> Hypothesis:
    """The hypothesis at `key`. Kinds raise SpecValueError with their key; node checks raise
    ScrubErrors naming the node: the caller locates both."""
    root = _node(doc, key, root=True)
    if policy not in POLICIES:
        raise doc.error(("policy",), f"unknown policy {policy!r}; valid: {', '.join(POLICIES)}.")
    return Hypothesis(root, name=name, policy=policy)


def _get(doc: Located, key: Key) -> Any:
    value = doc.data
    for part in key:
        value = value[part]
    return value


def _children(doc: Located, key: Key, spec: dict) -> tuple[Node, ...]:
    """The nodes of a `children` list; an `each_position` entry gives one node per position (its errors
    point at the entry)."""
    out = []
    for i, child in enumerate(spec.get("children", [])):
        ckey = key + ("children", i)
        if isinstance(child, dict) and position_groups.KEY in child:
            positions = position_groups.positions_of(child[position_groups.KEY])
            if positions is None:
                raise doc.error(ckey + (position_groups.KEY,), "each_position must be a position, a list of "
                                "positions, or a range 'start:stop' (e.g. '0:42'). " + position_groups.BASE_60_HINT)
            template = {k: v for k, v in child.items() if k != position_groups.KEY}

            def make(p, template=template, ckey=ckey):
                return _node(doc, ckey, spec=position_groups.fill(template, p))

            group = PositionGroup(make, positions)  # written back as one entry, as per_position's nodes are
            out += [replace(make(p), origin=(group, p)) for p in positions]
        else:
            out.append(_node(doc, ckey))
    return tuple(out)


def _node(doc: Located, key: Key, root: bool = False, spec: Any = None) -> Node:
    spec = _get(doc, key) if spec is None else spec
    if not isinstance(spec, dict):
        raise doc.error(key, f"a node must be a mapping with keys {', '.join(NODE_KEYS)}; got {type(spec).__name__}.")
    unknown = [k for k in spec if k not in NODE_KEYS]
    if unknown:
        raise doc.error(key + (unknown[0],), f"unknown node key {unknown[0]!r}; valid: {', '.join(NODE_KEYS)}.")
    if "name" not in spec:
        raise doc.error(key, "every node needs a 'name'.")
    if not isinstance(spec["name"], str) or not spec["name"].strip():
        raise doc.error(key + ("name",), "a node name must be a non-empty string.")
    paths = spec.get("paths", "output" if root else None)
    if paths is None:
        raise doc.error(key, f"node {spec['name']!r} needs 'paths' (what it claims), e.g. 'output <- head.1.5' "
                             "or '.k <- head.0.0' relative to its parent.")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or not paths:
        raise doc.error(key + ("paths",), "paths must be a string or a non-empty list of strings.")
    children = spec.get("children", [])
    if not isinstance(children, list):
        raise doc.error(key + ("children",), "children must be a list of nodes.")
    policy = spec.get("policy")
    if policy is not None and policy not in POLICIES:
        raise doc.error(key + ("policy",), f"unknown policy {policy!r}; valid: {', '.join(POLICIES)}.")
    return Node(spec["name"], tuple(paths),
                SAMPLERS.parse(SpecValue(spec["sampler"], key + ("sampler",))) if "sampler" in spec else Exact(),
                _children(doc, key, spec),
                SAMPLERS.parse(SpecValue(spec["other_inputs"], key + ("other_inputs",)))
                if "other_inputs" in spec else Unconditional(),
                policy,
                Rewrite.from_spec(SpecValue(spec["rewrite"], key + ("rewrite",))) if "rewrite" in spec else None)


def sampler(doc: Located, key: Key):
    """The sampler at `key`, read by its own kind (see `SAMPLERS`)."""
    return SAMPLERS.parse(SpecValue(_get(doc, key), key))


# --- Python -> spec --------------------------------------------------------------------

def hypothesis_to_dict(h: Hypothesis) -> dict:
    """The `hypothesis:` section for `h` (paths as written on the nodes)."""
    return _node_dict(h.root, root=True)


def _node_dict(n: Node, root: bool = False) -> dict:
    out: dict = {"name": n.name}
    paths = [str(p) for p in n.paths]
    if not (root and paths == ["output"]):
        out["paths"] = paths[0] if len(paths) == 1 else paths
    if not isinstance(n.sampler, Exact):
        out["sampler"] = n.sampler.to_spec()
    if n.children and not isinstance(n.other_inputs, Unconditional):
        out["other_inputs"] = n.other_inputs.to_spec()
    if n.policy is not None:
        out["policy"] = n.policy
    if n.rewrite is not None:
        out["rewrite"] = n.rewrite.to_spec()
    if n.children:
        out["children"] = position_groups.compact(list(n.children), _node_dict)
    return out


__all__ = ["parse_hypothesis", "hypothesis_to_dict", "sampler", "NotSerializable", "NODE_KEYS"]
