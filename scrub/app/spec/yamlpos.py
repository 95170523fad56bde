"""Safe YAML with positions: plain values plus the line of every key.

Why not `yaml.safe_load`: errors must point at the file, line and key. The
document is *composed* with PyYAML's SafeLoader (which builds no objects
beyond plain scalars) and converted here, recording where each value sits.
Duplicate keys, recursive aliases and non-string keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from scrub.errors import ScrubError

Key = tuple  # a path into the document: ("hypothesis", "children", 0, "paths", 1)


class SpecError(ScrubError, ValueError):
    """A spec file is invalid. Carries where: file, line, key path."""

    def __init__(self, message: str, file: str = "<spec>", line: int | None = None, key: str | None = None):
        where = file + (f", line {line}" if line else "") + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {message}")  # first: ScrubError's __init__ sets `key` too (to None)
        self.file, self.line, self.key, self.detail = file, line, key, message


@dataclass
class Located:
    """A parsed document and the line of each key path."""

    data: Any
    lines: dict
    file: str

    def line(self, key: Key) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def error(self, key: Key, message: str) -> SpecError:
        return SpecError(message, self.file, self.line(key), key_text(key))


def key_text(key: Key) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def parse_yaml(text: str, file: str = "<spec>") -> Located:
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"YAML syntax error: {exc.problem or exc}" + (f" ({exc.context})" if exc.context else ""),
                        file, line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file) from None
    lines: dict = {}
    if root is None:
        raise SpecError("the file is empty; a spec needs at least 'model', 'data', 'loss' and 'hypothesis'.", file, 1)
    data = _convert(root, (), lines, file, set())
    return Located(data, lines, file)


def _convert(node, key: Key, lines: dict, file: str, stack: set) -> Any:
    lines.setdefault(key, node.start_mark.line + 1)
    if id(node) in stack:
        raise SpecError("a YAML alias refers to itself (a cyclic document); specs must be trees.", file,
                        node.start_mark.line + 1, key_text(key))
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, file, key)
    stack = stack | {id(node)}
    plain = {yaml.SequenceNode: "tag:yaml.org,2002:seq", yaml.MappingNode: "tag:yaml.org,2002:map"}
    if type(node) in plain and node.tag != plain[type(node)]:
        raise SpecError(f"unsupported value (tag {node.tag!r}); specs hold plain numbers, strings, lists and "
                        "mappings only.", file, node.start_mark.line + 1, key_text(key))
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, key + (i,), lines, file, stack) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k_node, v_node in node.value:
            if not isinstance(k_node, yaml.ScalarNode):
                raise SpecError("mapping keys must be plain names.", file, k_node.start_mark.line + 1, key_text(key))
            k = k_node.value
            if k in out:
                raise SpecError(f"duplicate key {k!r}.", file, k_node.start_mark.line + 1, key_text(key + (k,)))
            lines[key + (k,)] = k_node.start_mark.line + 1
            out[k] = _convert(v_node, key + (k,), lines, file, stack)
        return out
    raise SpecError(f"unsupported YAML node {node.tag}.", file, node.start_mark.line + 1, key_text(key))


def _scalar(node, file: str, key: Key) -> Any:
    """Resolve a plain scalar (int, float, bool, null, str) with the safe constructors only."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(f"unsupported value ({exc.problem}); specs hold plain numbers, strings, lists and "
                        "mappings only.", file, node.start_mark.line + 1, key_text(key)) from None
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    """Plain YAML for spec dicts (block style, keys in the given order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
