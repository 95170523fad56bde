"""The hypothesis graph as an SVG tree: one box per node showing its whole claim.

Nothing is clipped: a box is as wide and as tall as its text needs. Long paths
wrap only between hops (`output <- head.1.0.k` / `<- head.0.2`), never inside
a site name; a hop longer than the widest line makes its box wider. Text is
monospace, so its width is known here without a browser (0.6 em a character,
two for East Asian wide characters, with a margin). Subtrees are laid out by
their real widths, so a wide tree is as wide as it needs to be (the report
lets it scroll) and no box overlaps another.
"""

from __future__ import annotations

import unicodedata
from typing import Mapping, Optional, Sequence

from scrub.app.report.svg import FONT, esc

MONO = 'font-family="ui-monospace, Menlo, Consolas, \'DejaVu Sans Mono\', monospace"'
CHAR_EM = 0.62  # monospace advance per character, in em (fonts measure 0.55-0.61)
NAME_SIZE, TEXT_SIZE = 12, 10  # px
PAD, LINE_H, GAP_X, GAP_Y = 8, 14, 18, 38
WRAP = 46  # characters per line before a path wraps at a hop
MIN_W = 150


def text_width(text: str, size: int) -> float:
    """Pixel width of `text` in the monospace font at `size` px (wide characters count twice)."""
    cells = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return cells * CHAR_EM * size


def wrap_path(path: str, limit: int = WRAP) -> list[str]:
    """A path split into lines between hops: 'output <- a <- b' -> ['output <- a', '  <- b'] when long."""
    hops = [h.strip() for h in path.split("<-")]
    if len(path) <= limit or len(hops) == 1:
        return [path]
    lines = [hops[0]]
    for hop in hops[1:]:
        joined = f"{lines[-1]} <- {hop}"
        if len(joined) <= limit:
            lines[-1] = joined
        else:
            lines.append(f"  <- {hop}")
    return lines


def wrap_words(text: str, limit: int = WRAP) -> list[str]:
    """Plain text split into lines at spaces (a word longer than the limit keeps its own line, whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


class Box:
    """A node's text blocks (name, sampler, one block per path) and its size."""

    def __init__(self, node: Mapping):
        self.name = str(node.get("name"))
        self.leaf = bool(node.get("leaf"))
        paths = [str(p) for p in (node.get("paths") or [])]
        self.blocks: list[tuple[str, str, list[str]]] = [("name", self.name, wrap_words(self.name, WRAP - 8))]
        sampler = f"sampler: {node.get('sampler', 'n/a')}"
        self.blocks.append(("sampler", sampler, wrap_words(sampler)))
        self.blocks += [("path", p, wrap_path(p)) for p in paths] or [("more", "(no paths)", ["(no paths)"])]
        widths = [text_width(line, NAME_SIZE if kind == "name" else TEXT_SIZE)
                  for kind, _, lines in self.blocks for line in lines]
        self.w = max(MIN_W, int(max(widths) + 2 * PAD + 4))
        self.h = 10 + LINE_H * sum(len(lines) for _, _, lines in self.blocks)


def layout(nodes: Sequence[Mapping], boxes: dict[str, Box]) -> tuple[dict[str, tuple[float, int]], list]:
    """Top-left x and depth of every box, and the parent-child edges: each subtree gets the width of its
    widest row, children centred under it, the parent centred over its children."""
    names = [str(n.get("name")) for n in nodes]
    known = set(names)
    children: dict[Optional[str], list[str]] = {}
    for n, name in zip(nodes, names):
        parent = n.get("parent")
        parent = str(parent) if parent is not None and str(parent) in known and str(parent) != name else None
        children.setdefault(parent, []).append(name)
    kids: dict[str, list[str]] = {}
    span: dict[str, float] = {}

    def measure(name: str, seen: set) -> float:
        seen.add(name)
        kids[name] = [c for c in children.get(name, []) if c not in seen]
        for c in kids[name]:
            seen.add(c)
        inner = sum(measure(c, seen) for c in kids[name]) + GAP_X * max(0, len(kids[name]) - 1)
        span[name] = max(boxes[name].w, inner)
        return span[name]

    pos: dict[str, tuple[float, int]] = {}
    edges: list[tuple[str, str]] = []

    def place(name: str, x0: float, depth: int) -> float:
        """Place the subtree in [x0, x0 + span]; returns the centre of `name`'s box."""
        inner = sum(span[c] for c in kids[name]) + GAP_X * max(0, len(kids[name]) - 1)
        x, centres = x0 + (span[name] - inner) / 2, []
        for c in kids[name]:
            edges.append((name, c))
            centres.append(place(c, x, depth + 1))
            x += span[c] + GAP_X
        w = boxes[name].w
        centre = (centres[0] + centres[-1]) / 2 if centres else x0 + span[name] / 2
        left = min(max(centre - w / 2, x0), x0 + span[name] - w)
        pos[name] = (left, depth)
        return left + w / 2

    seen: set = set()
    x = GAP_X
    roots = children.get(None, []) + [n for n in names if n not in children.get(None, [])]
    for root in roots:  # true roots first; anything unreachable (a parent cycle) still gets drawn
        if root in seen:
            continue
        measure(root, seen)
        place(root, x, 0)
        x += span[root] + GAP_X
    return pos, edges


def tree(nodes: Sequence[Mapping], *, svg_id: Optional[str] = None) -> str:
    """The hypothesis graph top-down: one box per node (name, sampler, every path in full), parent-to-child
    edges. The SVG has its natural size; the report scrolls it rather than shrink it."""
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    if not nodes:
        return (f'<svg xmlns="http://www.w3.org/2000/svg"{ident} class="plot tree" width="300" height="40" '
                f'{FONT}><text x="10" y="24" font-size="11" fill="#777">no nodes in the hypothesis graph</text></svg>')
    by_name = {str(n.get("name")): n for n in nodes}
    boxes = {name: Box(n) for name, n in by_name.items()}
    pos, edges = layout(nodes, boxes)
    depth = max(d for _, d in pos.values()) + 1
    row_h = [max((boxes[n].h for n, (_, d) in pos.items() if d == r), default=0) for r in range(depth)]
    row_y = [GAP_Y / 2 + sum(row_h[:r]) + GAP_Y * r for r in range(depth)]
    width = int(max(x + boxes[n].w for n, (x, _) in pos.items()) + GAP_X)
    height = int(row_y[-1] + row_h[-1] + GAP_Y / 2)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg"{ident} class="plot tree" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" {FONT}><title>hypothesis graph</title>']
    for parent, child in edges:
        (px, pd), (cx, cd) = pos[parent], pos[child]
        x1, y1 = px + boxes[parent].w / 2, row_y[pd] + boxes[parent].h
        x2, y2 = cx + boxes[child].w / 2, row_y[cd]
        mid = (y1 + y2) / 2
        out.append(f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} '
                   f'{x2:.1f},{y2:.1f}" fill="none" stroke="#8a8a8a" stroke-width="1.4"/>')
    for name, node in by_name.items():
        out.append(_box(boxes[name], node, pos[name][0], row_y[pos[name][1]]))
    return "".join(out) + "</svg>"


def _box(box: Box, node: Mapping, x: float, y: float) -> str:
    tip = [box.name, f"sampler: {node.get('sampler')}", f"policy: {node.get('policy')}"]
    if node.get("other_inputs") is not None:
        tip.append(f"other inputs: {node.get('other_inputs')}")
    out = [f'<g class="node" data-name="{esc(box.name)}"><title>{esc(chr(10).join(tip))}</title>',
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w}" height="{box.h}" rx="6" '
           f'fill="{"#eef6ee" if box.leaf else "#eef2fb"}" stroke="{"#5a9a5a" if box.leaf else "#4269d0"}" '
           'stroke-width="1.2"/>']
    line = 0
    for kind, full, lines in box.blocks:
        size = NAME_SIZE if kind == "name" else TEXT_SIZE
        style = {"name": 'font-weight="700" fill="#222"', "path": 'fill="#333"'}.get(kind, 'fill="#666"')
        spans = "".join(f'<tspan x="{x + PAD:.1f}" y="{y + 16 + (line + i) * LINE_H:.1f}">{esc(text)}</tspan>'
                        for i, text in enumerate(lines))
        out.append(f'<text class="node-{kind}" data-full="{esc(full)}" font-size="{size}" {MONO} {style} '
                   f'style="white-space: pre">{spans}</text>')
        line += len(lines)
    out.append("</g>")
    return "".join(out)
