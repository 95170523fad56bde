"""Paths through the model, written from the output down.

    output <- head.1.5.k <- head.0.0     head 1.5 reads head 0.0 through its key input
    output <- head.1.5.k                 head 1.5's whole key input (same as `... <- *`)
    output <- head.1.5@-1                head 1.5 at the last position only
    output <- ... <- embed               every path from the token embedding to the output
    output <- ... <- embed (not head.0.0)  ... that does not pass through head 0.0
    output <- *                          every site's direct path to the output

A hop is a site name, optionally `.port` (the input through which this site
reads the next hop, e.g. q, k, v for an attention head) and `@positions`
(`@-1`, `@0,3`, `@2:5`). `*` is any one site; `...` is any chain of zero or
more sites. A path ending in a port is completed with `<- *` (all inputs
through that port). A trailing `(not SITE, SITE, ...)` excludes sites: the
path claims only the concrete paths that fit its hops and visit none of the
named sites anywhere (from the output down to its last site).

The language knows no model: a port is written as a last dot-component that
is a name, not a number (`head.1.5.k`; `mlp.0` is a site), and which ports a
site really has comes from the model's graph when the hypothesis is compiled.

A child node may write its paths relative to each of its parent's paths:
`.k <- head.0.0` continues the parent's last site through its key input,
`head.0.0` continues through any input. An absolute child path may also
*open* its parent's last hop: it repeats the parent's hops but the last and
continues from there (`output <- head.1.0@0 <- ... <- head.0.0@1` under a
parent claiming `output <- head.1.0@0 <- *@1`); it then claims its paths
whose first edge past the shared hops is one of the parent's last edges.
Parsing is pure syntax; site names are checked against a model when the
hypothesis is compiled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from scrub.errors import HypothesisError

SITE = "site"
ANY_ONE = "*"
ANY_CHAIN = "..."


@dataclass(frozen=True, order=True)
class Hop:
    """One step of a path: a named site, `*` (any one site) or `...` (any chain)."""

    kind: str  # SITE, ANY_ONE or ANY_CHAIN
    site: Optional[str] = None
    port: Optional[str] = None  # input of this hop's site through which the next hop is read
    positions: Optional[tuple[int, ...]] = None  # None: every position

    def __str__(self) -> str:
        if self.kind == ANY_CHAIN:
            return ANY_CHAIN
        text = self.site if self.kind == SITE else ANY_ONE
        if self.port:
            text += "." + self.port
        if self.positions is not None:
            text += "@" + ",".join(str(p) for p in self.positions)
        return text


@dataclass(frozen=True, order=True)
class Path:
    """An absolute path: hops from the output down, and sites it must not pass through.
    Immutable and hashable."""

    hops: tuple[Hop, ...]
    excluding: tuple[str, ...] = ()  # site names, sorted: no concrete path claimed visits one

    def __post_init__(self):
        object.__setattr__(self, "excluding", tuple(sorted(set(self.excluding))))
        _check_path(self)

    def __str__(self) -> str:
        hops = list(self.hops)
        # `x.k <- *` prints as `x.k`: the trailing `*` was implied by the port.
        if len(hops) >= 2 and hops[-1] == Hop(ANY_ONE) and hops[-2].port:
            hops = hops[:-1]
        text = " <- ".join(str(h) for h in hops)
        return text + (f" (not {', '.join(self.excluding)})" if self.excluding else "")

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"

    def __len__(self) -> int:
        return len(self.hops)

    @property
    def last(self) -> Hop:
        return self.hops[-1]

    def extends(self, other: "Path") -> bool:
        """True when this path continues `other` (see `hops_extend`)."""
        return hops_extend(self.hops, other.hops)

    def within(self, parent: "Path") -> bool:
        """True when this path may lie inside `parent`'s claim (see `hops_within`)."""
        return hops_within(self.hops, parent.hops)


def hops_extend(child: tuple[Hop, ...], parent: tuple[Hop, ...]) -> bool:
    """True when `parent` is a proper prefix of `child`, except that the child may
    add a port to the parent's last hop (`head.1.5` continued as `head.1.5.k`)."""
    n = len(parent)
    if len(child) <= n or child[: n - 1] != parent[: n - 1]:
        return False
    mine, theirs = child[n - 1], parent[n - 1]
    return mine == theirs or (theirs.port is None and replace(mine, port=None) == theirs)


def hops_within(child: tuple[Hop, ...], parent: tuple[Hop, ...]) -> bool:
    """True when a child's pattern may lie inside its parent's claim: it repeats all of the parent's hops
    but the last (the hop before it may gain a port) and continues with at least one hop of its own.
    A literal extension (`hops_extend`) is the case where the child's next hop is the parent's last."""
    n = len(parent)
    if n == 1:  # the root claims the whole output: every path lies inside it
        return hops_extend(child, parent)
    if len(child) < n or child[: n - 2] != parent[: n - 2]:
        return False
    mine, theirs = child[n - 2], parent[n - 2]
    if not (mine == theirs or (theirs.port is None and replace(mine, port=None) == theirs)):
        return False
    first, last = child[n - 1], parent[n - 1]  # the child's next hop must be able to land on the parent's last
    return first.kind != SITE or last.kind != SITE or first.site == last.site


def _check_path(path: Path) -> None:
    text = " <- ".join(str(h) for h in path.hops)
    first = path.hops[0] if path.hops else None
    if first is None or first.kind != SITE or first.site != "output":
        raise HypothesisError(f"path {text!r} must start at 'output' (paths are written from the output down).")
    if first.positions is not None and len(path.hops) == 1:
        raise HypothesisError(f"path {text!r}: the root claims the whole output; drop the '@' positions.")
    for a, b in zip(path.hops, path.hops[1:]):
        if a.kind == ANY_CHAIN and b.kind == ANY_CHAIN:
            raise HypothesisError(f"path {text!r} has '...' twice in a row; one '...' already means any chain.")
    if path.hops[-1].kind == ANY_CHAIN:
        raise HypothesisError(f"path {text!r} ends in '...'; name the site the chain ends at, e.g. '... <- embed'.")
    for site in path.excluding:
        if not isinstance(site, str) or not _SITE_RE.match(site):
            raise HypothesisError(f"path {text!r}: cannot exclude {site!r}; name whole sites, e.g. "
                                  "'(not head.0.0, mlp.0)' (no ports, positions or wildcards).")
        if site == "output":
            raise HypothesisError(f"path {text!r} excludes 'output', which every path starts at; "
                                  "exclude sites below it.")


_SITE_RE = re.compile(r"^[A-Za-z_][\w.\-]*$")
_EXCLUDE_RE = re.compile(r"\(\s*not\b(?P<sites>[^()]*)\)\s*$")


def split_exclusions(text: str, where: str) -> tuple[str, tuple[str, ...]]:
    """`'... <- embed (not head.0.0, mlp.0)'` -> (`'... <- embed'`, `('head.0.0', 'mlp.0')`)."""
    m = _EXCLUDE_RE.search(text)
    if m is None:
        if "(" in text or ")" in text:
            raise HypothesisError(f"{where}: cannot read the parentheses; exclusions go at the end of the path, "
                                  "as '(not head.0.0)' or '(not head.0.0, mlp.0)'.")
        return text, ()
    sites = tuple(s.strip() for s in m.group("sites").split(","))
    if not sites or any(not s for s in sites):
        raise HypothesisError(f"{where}: '(not ...)' needs site names separated by commas, e.g. '(not head.0.0)'.")
    for s in sites:
        if "@" in s or s in (ANY_ONE, ANY_CHAIN) or not _SITE_RE.match(s):
            raise HypothesisError(f"{where}: cannot exclude {s!r}; name whole sites, e.g. '(not head.0.0)' "
                                  "(no ports, positions or wildcards).")
    rest = text[: m.start()]
    if "(" in rest or ")" in rest:
        raise HypothesisError(f"{where}: only one '(not ...)' is allowed, at the end of the path.")
    return rest, sites


_HOP_RE = re.compile(r"^(?P<name>[A-Za-z_][\w.\-]*|\*)(?:@(?P<pos>-?\d+(?:\s*[,:]\s*-?\d+)*))?$")


def _parse_positions(text: str, where: str) -> tuple[int, ...]:
    text = text.replace(" ", "")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2 or "," in text:
            raise HypothesisError(f"{where}: positions {text!r} must be a list like '0,3' or a range like '2:5'.")
        lo, hi = int(parts[0]), int(parts[1])
        if lo < 0 or hi <= lo:
            raise HypothesisError(f"{where}: range {text!r} must be 'start:stop' with 0 <= start < stop; "
                                  "list negative positions instead, e.g. '-2,-1'.")
        return tuple(range(lo, hi))
    values = tuple(int(p) for p in text.split(","))
    if len(set(values)) != len(values):
        raise HypothesisError(f"{where}: positions {text!r} repeat a position.")
    return tuple(sorted(values))


def parse_hop(text: str, where: str = "path") -> Hop:
    text = text.strip()
    if text == ANY_CHAIN:
        return Hop(ANY_CHAIN)
    if not text:
        raise HypothesisError(f"{where}: empty hop (two '<-' in a row, or a path that starts or ends with '<-').")
    port = None
    name_part, at, pos_part = text.partition("@")
    # a port is a last dot-component that is a name, not a number: head.1.5.k, head.1.5.k@-1 (mlp.0 is a site)
    head, dot, tail = name_part.rpartition(".")
    if dot and head and tail.isidentifier():
        name_part, port = head, tail
    m = _HOP_RE.match(name_part + (at + pos_part if at else ""))
    if not m:
        raise HypothesisError(f"{where}: cannot read hop {text!r}; write a site name like 'head.1.5', "
                              "optionally '.q/.k/.v' and '@positions', or '*' or '...'.")
    positions = _parse_positions(m.group("pos"), where) if m.group("pos") else None
    if m.group("name") == ANY_ONE:
        if port:
            raise HypothesisError(f"{where}: '*' cannot take a port ({text!r}); name the site instead.")
        return Hop(ANY_ONE, positions=positions)
    return Hop(SITE, m.group("name"), port, positions)


def _complete(hops: list[Hop]) -> tuple[Hop, ...]:
    if hops and hops[-1].kind == SITE and hops[-1].port:
        hops = hops + [Hop(ANY_ONE)]
    return tuple(hops)


def parse_path(text: "str | Path", parent: Optional[Path] = None, where: str = "path") -> Path:
    """Parse an absolute path, or one relative to `parent` (see module doc)."""
    if isinstance(text, Path):
        return text
    if not isinstance(text, str):
        raise HypothesisError(f"{where}: a path must be a string like 'output <- head.1.5', got {text!r}.")
    where = f"{where} {text!r}"
    text, excluding = split_exclusions(text, where)
    pieces = [p for p in text.split("<-")]
    if text.strip().startswith("output") or parent is None:
        hops = [parse_hop(p, where) for p in pieces]
        return Path(_complete(hops), excluding)
    base = list(parent.hops)
    if base and base[-1] == Hop(ANY_ONE) and len(base) >= 2 and base[-2].port:
        raise HypothesisError(f"{where}: the parent path {str(parent)!r} already claims a whole input; "
                              "a child cannot extend it. Give the parent a site, not a port.")
    first = pieces[0].strip()
    if first.startswith(".") and first != ANY_CHAIN:
        port_text, at, rest = first[1:].partition("@")
        if not port_text.isidentifier() or at:
            raise HypothesisError(f"{where}: '{first}' must be a port of the parent's site, such as .q, .k or .v "
                                  "(no positions on a port; put them on the site after it).")
        last = base[-1]
        if last.kind != SITE:
            raise HypothesisError(f"{where}: the parent path {str(parent)!r} does not end at a named site, "
                                  "so it has no port to continue from.")
        if last.port and last.port != port_text:
            raise HypothesisError(f"{where}: parent path {str(parent)!r} already continues through "
                                  f"port {last.port!r}, not {port_text!r}.")
        base[-1] = replace(last, port=port_text)
        pieces = pieces[1:]
    hops = base + [parse_hop(p, where) for p in pieces]
    return Path(_complete(hops), excluding)


def format_paths(paths) -> list[str]:
    return [str(p) for p in paths]
