"""Safe YAML with positions: plain values plus the line of every key.

Why not `yaml.safe_load`: errors must point at the file, line and key. The
document is *composed* with PyYAML's SafeLoader (which builds no objects
beyond plain scalars) and converted here, recording where each value sits.
Duplicate keys, recursive aliases and non-string keys are errors.

Limits (docs/cli.md), so a small hostile file cannot make scrub work for
minutes: a spec file holds at most `MAX_BYTES`, nests collections at most
`MAX_DEPTH` deep, and expands (aliases repeated in full) to at most
`MAX_VALUES` values. A "billion laughs" file of a few hundred bytes is
refused after `MAX_VALUES` values, not expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from scrub.errors import ScrubError

Key = tuple  # a path into the document: ("hypothesis", "children", 0, "paths", 1)

MAX_BYTES = 2 * 1024 * 1024  # a spec file's size; bundled specs are a few KB
MAX_DEPTH = 100  # nested lists and mappings (a node with children takes two levels)
MAX_VALUES = 100_000  # values after expanding aliases


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


class _DepthLimitedLoader(yaml.SafeLoader):
    """The safe loader, refusing to compose collections nested deeper than MAX_DEPTH (PyYAML's composer
    recurses per level and would end in a RecursionError)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise LimitError(f"the document nests lists and mappings more than {MAX_DEPTH} deep; specs are "
                                     f"limited to {MAX_DEPTH} levels.", self.peek_event().start_mark.line + 1)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        return super().compose_node(parent, index)


class LimitError(Exception):
    """A size limit was hit while reading; carries the line."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def load_document(path) -> tuple[str, Located]:
    """A spec file's text and its YAML with positions. Needs nothing but PyYAML: a file that is not
    readable, not UTF-8, too large or not YAML is reported without loading torch or the engine."""
    text = read_text(path)
    return text, parse_yaml(text, str(path))


def read_text(path) -> str:
    """A spec file's text: UTF-8, at most MAX_BYTES (checked before reading it all)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {exc.strerror or exc}.", str(path)) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"the file is larger than {MAX_BYTES:,} bytes, the limit for spec files. Is this a spec "
                        "file?", str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it "
                        "as UTF-8.", str(path), line) from None


def parse_yaml(text: str, file: str = "<spec>") -> Located:
    if len(text) > MAX_BYTES:
        raise SpecError(f"the file has {len(text):,} characters; spec files are limited to {MAX_BYTES:,} bytes. "
                        "Is this a spec file?", file)
    try:
        loader = _DepthLimitedLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except LimitError as exc:
        raise SpecError(str(exc), file, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"YAML syntax error: {exc.problem or exc}" + (f" ({exc.context})" if exc.context else ""),
                        file, line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file) from None
    if root is None:
        raise SpecError("the file is empty; a spec needs at least 'model', 'data', 'loss' and 'hypothesis'.", file, 1)
    converter = _Converter(file)
    return Located(converter.convert(root, (), frozenset()), converter.lines, file)


class _Converter:
    """Composed YAML nodes -> plain values, recording the line of every key path and counting values."""

    def __init__(self, file: str):
        self.file, self.lines, self.count = file, {}, 0
        self.scalars = yaml.constructor.SafeConstructor()  # one for the document: scalars only, never objects

    def error(self, message: str, node, key: Key) -> SpecError:
        return SpecError(message, self.file, node.start_mark.line + 1, key_text(key))

    def convert(self, node, key: Key, stack: frozenset) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.error(f"the document expands to more than {MAX_VALUES:,} values (aliases are repeated in "
                             f"full); specs are limited to {MAX_VALUES:,}. Aliases of aliases (a 'billion laughs') "
                             "are refused, not expanded.", node, key)
        self.lines.setdefault(key, node.start_mark.line + 1)
        if id(node) in stack:
            raise self.error("a YAML alias refers to itself (a cyclic document); specs must be trees.", node, key)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, key)
        stack = stack | {id(node)}
        plain = {yaml.SequenceNode: "tag:yaml.org,2002:seq", yaml.MappingNode: "tag:yaml.org,2002:map"}
        if type(node) in plain and node.tag != plain[type(node)]:
            raise self.error(f"unsupported value (tag {node.tag!r}); specs hold plain numbers, strings, lists and "
                             "mappings only.", node, key)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(child, key + (i,), stack) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k_node, v_node in node.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    raise self.error("mapping keys must be plain names.", k_node, key)
                k = k_node.value
                if k in out:
                    raise self.error(f"duplicate key {k!r}.", k_node, key + (k,))
                self.lines[key + (k,)] = k_node.start_mark.line + 1
                out[k] = self.convert(v_node, key + (k,), stack)
            return out
        raise self.error(f"unsupported YAML node {node.tag}.", node, key)

    def scalar(self, node, key: Key) -> Any:
        """Resolve a plain scalar (int, float, bool, null, str) with the safe constructors only."""
        try:
            value = self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self.error(f"unsupported value ({exc.problem}); specs hold plain numbers, strings, lists and "
                             "mappings only.", node, key) from None
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate written as an escape: "\ud83d"
                raise self.error(f"the string holds an invalid character ({value[exc.start]!r}, half of a UTF-16 "
                                 "pair); write the character itself, or escape it whole as \\U0001F642.", node,
                                 key) from None
        return value


def dump_yaml(data: Any) -> str:
    """Plain YAML for spec dicts (block style, keys in the given order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
