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

Samplers: `exact`, `unconditional`, `{agree: FEATURE, if_empty: error|parent|unconditional}`,
`{shared: GROUP, sampler: SAMPLER}`. Features: `label`, `identity`, `constant`,
`{token_at: 3}`, `{tokens_at: [2, 5]}`, `{column: name}`, or
`{function: package.module.fn, per: datum|batch, column: raw, name: ...}`.
"""

from __future__ import annotations

from typing import Any

from scrub.app.spec.imports import import_object
from scrub.app.spec.yamlpos import Key, Located

from hypotheses import features as F
from hypotheses.nodes import POLICIES, Hypothesis, Node
from hypotheses.samplers import IF_EMPTY, Agree, Exact, Shared, Unconditional

NODE_KEYS = ("name", "paths", "sampler", "other_inputs", "policy", "children")
BUILTIN_FEATURES = ("label", "identity", "constant", "token_at", "tokens_at", "column", "function")


# --- spec -> Python --------------------------------------------------------------------

def parse_hypothesis(doc: Located, key: Key, name: str, policy: str) -> Hypothesis:
    root = _node(doc, key, root=True)
    if policy not in POLICIES:
        raise doc.error(("policy",), f"unknown policy {policy!r}; valid: {', '.join(POLICIES)}.")
    return Hypothesis(root, name=name, policy=policy)


def _get(doc: Located, key: Key) -> Any:
    value = doc.data
    for part in key:
        value = value[part]
    return value


def _node(doc: Located, key: Key, root: bool = False) -> Node:
    spec = _get(doc, key)
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
                sampler(doc, key + ("sampler",)) if "sampler" in spec else Exact(),
                tuple(_node(doc, key + ("children", i)) for i in range(len(children))),
                sampler(doc, key + ("other_inputs",)) if "other_inputs" in spec else Unconditional(),
                policy)


def sampler(doc: Located, key: Key):
    spec = _get(doc, key)
    if spec == "exact":
        return Exact()
    if spec == "unconditional":
        return Unconditional()
    if isinstance(spec, dict) and len(spec) >= 1:
        if "agree" in spec:
            extra = [k for k in spec if k not in ("agree", "if_empty")]
            if extra:
                raise doc.error(key + (extra[0],), f"unknown key {extra[0]!r} in an agree sampler; valid: agree, if_empty.")
            if_empty = spec.get("if_empty", "error")
            if if_empty not in IF_EMPTY:
                raise doc.error(key + ("if_empty",), f"if_empty must be one of {', '.join(IF_EMPTY)}.")
            return Agree(feature(doc, key + ("agree",)), if_empty)
        if "shared" in spec:
            if set(spec) != {"shared", "sampler"} or not isinstance(spec["shared"], str):
                raise doc.error(key, "a shared sampler is {shared: GROUP_NAME, sampler: SAMPLER}.")
            inner = sampler(doc, key + ("sampler",))
            return Shared(spec["shared"], inner)
    raise doc.error(key, f"unknown sampler {spec!r}; valid: exact, unconditional, {{agree: FEATURE}}, "
                         "{shared: GROUP, sampler: SAMPLER}.")


def feature(doc: Located, key: Key) -> F.Feature:
    spec = _get(doc, key)
    if spec in ("label", "identity", "constant"):
        return F.BUILTINS[spec]()
    if isinstance(spec, dict) and len(spec) >= 1:
        kind = next(iter(spec))
        if kind == "token_at" and len(spec) == 1 and isinstance(spec[kind], int):
            return F.token_at(spec[kind])
        if kind == "tokens_at" and len(spec) == 1 and isinstance(spec[kind], list) and \
                all(isinstance(v, int) for v in spec[kind]):
            return F.tokens_at(spec[kind])
        if kind == "column" and len(spec) == 1 and isinstance(spec[kind], str):
            return F.column(spec[kind])
        if "function" in spec:
            return _function_feature(doc, key, spec)
    raise doc.error(key, f"unknown feature {spec!r}; valid: label, identity, constant, {{token_at: POS}}, "
                         "{tokens_at: [POS, ...]}, {column: NAME}, {function: package.module.fn, per: datum|batch}.")


def _function_feature(doc: Located, key: Key, spec: dict) -> F.Feature:
    allowed = ("function", "per", "column", "name")
    extra = [k for k in spec if k not in allowed]
    if extra:
        raise doc.error(key + (extra[0],), f"unknown key {extra[0]!r} in a function feature; valid: {', '.join(allowed)}.")
    path = spec["function"]
    try:
        fn = import_object(path)
    except (ValueError, ImportError) as exc:
        raise doc.error(key + ("function",), f"cannot import feature function {path!r}: {exc}") from None
    if not callable(fn):
        raise doc.error(key + ("function",), f"{path!r} is not callable.")
    per = spec.get("per", "datum")
    if per not in ("datum", "batch"):
        raise doc.error(key + ("per",), "per must be 'datum' (fn takes one datum) or 'batch' (fn takes the dataset).")
    name = spec.get("name", fn.__name__)
    if per == "datum":
        return F.from_datum(fn, column=spec.get("column", "raw"), name=name, ref=path)
    return F.from_batch(fn, name=name, ref=path)


# --- Python -> spec --------------------------------------------------------------------

class NotSerializable(ValueError):
    pass


def hypothesis_to_dict(h: Hypothesis) -> dict:
    """The `hypothesis:` section for `h` (paths as written on the nodes)."""
    return _node_dict(h.root, root=True)


def _node_dict(n: Node, root: bool = False) -> dict:
    out: dict = {"name": n.name}
    paths = [str(p) for p in n.paths]
    if not (root and paths == ["output"]):
        out["paths"] = paths[0] if len(paths) == 1 else paths
    if not isinstance(n.sampler, Exact):
        out["sampler"] = sampler_to_spec(n.sampler)
    if n.children and not isinstance(n.other_inputs, Unconditional):
        out["other_inputs"] = sampler_to_spec(n.other_inputs)
    if n.policy is not None:
        out["policy"] = n.policy
    if n.children:
        out["children"] = [_node_dict(c) for c in n.children]
    return out


def sampler_to_spec(s) -> Any:
    if isinstance(s, Exact):
        return "exact"
    if isinstance(s, Unconditional):
        return "unconditional"
    if isinstance(s, Agree):
        out = {"agree": feature_to_spec(s.feature)}
        if s.if_empty != "error":
            out["if_empty"] = s.if_empty
        return out
    if isinstance(s, Shared):
        return {"shared": s.group, "sampler": sampler_to_spec(s.sampler)}
    raise NotSerializable(f"cannot write sampler {s!r} to a spec")


def feature_to_spec(f: F.Feature) -> Any:
    if f.ref in ("label", "identity", "constant"):
        return f.ref
    if f.ref in ("token_at", "column"):
        return {f.ref: f.args[0]}
    if f.ref == "tokens_at":
        return {"tokens_at": list(f.args[0])}
    if f.ref and "." in f.ref:
        out = {"function": f.ref, "per": "datum" if f.per_datum else "batch"}
        if f.per_datum and f.column != "raw":
            out["column"] = f.column
        if f.name != f.ref.rsplit(".", 1)[-1]:
            out["name"] = f.name
        return out
    raise NotSerializable(f"feature {f.name!r} has no import path (a lambda or a local function?); define it as a "
                          "module-level function so a spec can name it.")
