"""`each_position:` entries in a spec's children: one entry for a node per position.

    children:
      - each_position: "0:42"               # or a list [0, 1, 5], or one position
        name: 2.1 reads position {i}
        paths: "*@{i}"
        sampler: {agree: {function: hypotheses.cases.paren.features.horizon_class, per: batch, args: ["{i}"]}}

Reading expands the entry: `{i}` in every string becomes the position, and a
string that is exactly `{i}` becomes the position as an integer. Writing does
the reverse for nodes made by `hypotheses.positions.per_position`, but only
when expanding the written entry gives back exactly those nodes' entries.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from hypotheses.positions import PLACEHOLDER, PositionGroup

KEY = "each_position"
_SENTINEL = 918273645  # a position no model has: marks where the position goes in a template


BASE_60_HINT = ("YAML reads an unquoted 3:10 as the base-60 number 190: quote a range ('3:10'), and write one "
                "position of 60 or more as a list ([190]).")


def positions_of(value: Any) -> Optional[tuple[int, ...]]:
    """The positions an `each_position` value names, or None if it is not one of its forms. A bare number
    of 60 or more is refused: it is what YAML makes of an unquoted range like 3:10."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,) if 0 <= value < 60 else None
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    if isinstance(value, str) and value.count(":") == 1:
        lo, hi = (part.strip() for part in value.split(":"))
        if lo.lstrip("-").isdigit() and hi.lstrip("-").isdigit() and int(hi) > int(lo) >= 0:
            return tuple(range(int(lo), int(hi)))
    return None


def fill(template: Any, i: int) -> Any:
    """The template with position `i` in place of every `{i}`."""
    if isinstance(template, str):
        return i if template == PLACEHOLDER else template.replace(PLACEHOLDER, str(i))
    if isinstance(template, dict):
        return {k: fill(v, i) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, i) for v in template]
    return template


def _unfill(value: Any) -> Any:
    """A node entry made at the sentinel position, with `{i}` where the sentinel was."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value == _SENTINEL:
        return PLACEHOLDER
    if isinstance(value, str):
        return value.replace(str(_SENTINEL), PLACEHOLDER)
    if isinstance(value, dict):
        return {k: _unfill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unfill(v) for v in value]
    return value


def positions_text(positions: tuple[int, ...]) -> Any:
    if len(positions) > 2 and positions == tuple(range(positions[0], positions[-1] + 1)) and positions[0] >= 0:
        return f"{positions[0]}:{positions[-1] + 1}"
    return list(positions) if len(positions) > 1 else positions[0]


def compact(children: list, node_dict: Callable) -> list[dict]:
    """Spec entries for a list of nodes: runs made by one `per_position` call become one entry, when
    expanding that entry reproduces each of the run's entries exactly; every other node is written whole."""
    out: list[dict] = []
    i = 0
    while i < len(children):
        group = _group(children[i])
        j = i
        while j < len(children) and group is not None and _group(children[j]) is group:
            j += 1
        entry = _entry(children[i:j], group, node_dict) if j - i > 1 else None
        if entry is None:
            out.append(node_dict(children[i]))
            i += 1
        else:
            out.append(entry)
            i = j
    return out


def _group(node) -> Optional[PositionGroup]:
    origin = getattr(node, "origin", None)
    return origin[0] if isinstance(origin, tuple) and isinstance(origin[0], PositionGroup) else None


def _entry(run: list, group: PositionGroup, node_dict: Callable) -> Optional[dict]:
    positions = tuple(n.origin[1] for n in run)
    try:
        template = _unfill(node_dict(group.make(_SENTINEL)))
    except Exception:  # a setting that cannot take the sentinel position: write the nodes out
        return None
    if KEY in template or any(fill(template, p) != node_dict(n) for p, n in zip(positions, run)):
        return None
    return {KEY: positions_text(positions), **template}
