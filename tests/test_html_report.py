"""The HTML run report, rendered in a real headless Chromium and checked on the rendered DOM.

Why a browser: string checks on our own output cannot tell whether the page
parses the way we think (inline SVG, escaping, ids); the DOM Chromium builds can.
"""

from __future__ import annotations

import copy
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import pytest

from records import cancelling_record, ranking_record as build_ranking_record, transformer_record
from scrub.app.report.html import SECTIONS, render_compare_html, render_html, write_report
from scrub.app.report.graph_svg import tree
from scrub.app.report.svg import histogram

EVIL = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found; install it with `apt-get install -y chromium` (Debian)")


# ---------------------------------------------------------------- the browser and a tiny DOM

def chromium(url: str, *extra: str) -> str:
    """Run headless Chromium on url with a fresh profile; its stdout (the DOM for --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="scrub-chromium-") as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *extra, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


class El:
    def __init__(self, tag: str, attrs: dict, parent: Optional["El"]):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, El):
                yield from c.walk()

    def find_all(self, tag: Optional[str] = None, **attrs) -> list["El"]:
        return [e for e in self.walk() if (tag is None or e.tag == tag)
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, ident: str) -> "El":
        found = self.find_all(id=ident)
        assert len(found) == 1, f"expected one element with id {ident!r}, found {len(found)}"
        return found[0]

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)


class DomBuilder(HTMLParser):
    """The dumped DOM as a tree (Chromium serialises it as well-formed HTML)."""
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = El("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        el = El(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(el)
        if tag not in self.VOID:
            self.cur = el

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(El(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def dom_of(path: Path) -> El:
    b = DomBuilder()
    b.feed(chromium(path.resolve().as_uri(), "--dump-dom"))
    b.close()
    return b.root


def squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# ---------------------------------------------------------------- records, written once per module

@pytest.fixture(scope="module")
def records() -> dict:
    return {"transformer": transformer_record(), "cancelling": cancelling_record()}


@pytest.fixture(scope="module")
def reports(records, tmp_path_factory) -> dict:
    return {k: write_report(r, tmp_path_factory.mktemp(k)) for k, r in records.items()}


# ---------------------------------------------------------------- in the browser

@needs_browser
def test_rendered_report_has_every_section_and_the_record_content(records, reports):
    record = records["transformer"]
    dom = dom_of(reports["transformer"])
    for ident in (*SECTIONS, "footer"):
        dom.by_id(ident)
    verdict = squash(dom.by_id("verdict").text)
    assert record["name"] in verdict and squash(record["verdict"]["text"]) in verdict
    assert record["verdict"]["status"] in verdict
    for flag in record["verdict"]["flags"]:
        assert flag in verdict

    rows = dom.by_id("summary-table").find_all("tr")[1:]
    assert [r.find_all("td")[0].text for r in rows] == list(record["summary"])

    graph_svg = dom.by_id("graph").find_all("svg")
    assert len(graph_svg) == 1
    names = {e.attrs["data-name"]: e for e in graph_svg[0].find_all("g")}
    for node in record["hypothesis_graph"]["nodes"]:
        assert node["name"] in names and node["name"] in names[node["name"]].text
    assert len(graph_svg[0].find_all("path")) == len(record["hypothesis_graph"]["nodes"]) - 1  # tree edges

    bars = dom.by_id("losses").find_all("rect")
    series = {b.attrs.get("data-series") for b in bars if "bar" in b.attrs.get("class", "")}
    assert series == {"model", "scrubbed", "random baseline"}

    dist = dom.by_id("distance")
    assert record["verdict"]["distance"] in dist.text
    assert any(e.attrs.get("class") == "marker" and "random baseline mean" in e.text for e in dist.find_all("line"))
    assert dist.find_all("rect", **{"class": "bar"})

    footer = squash(dom.by_id("footer").text)
    assert "0, 1" in footer and "tiny tokens" in footer and "scrub-transformer" in footer and "1.00 s" in footer
    assert not dom.find_all("script")


@needs_browser
def test_cancel_section_names_the_cancelling_set_in_plain_words(records, reports):
    record = records["cancelling"]
    dom = dom_of(reports["cancelling"])
    cancel = dom.by_id("cancel")
    text = squash(cancel.text)
    assert "output <- b" in text and "output <- c" in text
    sets = cancel.by_id("cancel-sets").find_all("tr")[1:]
    assert len(sets) == 1
    cells = sets[0].find_all("td")
    assert sorted(squash(d.text) for d in cells[1].find_all("div")) == ["output <- b", "output <- c"]
    assert len(cancel.by_id("cancel-components").find_all("tr")) == 3
    # what each number is, why "restored alone" can be negative, the thresholds and where to change them
    assert "restored alone" in text and "negative" in text and "breaks the cancellation" in text
    assert record["cancel"]["settings"]["description"] in text and "cancel:" in text
    # one random-baseline figure: the cancel section points at the verdict's instead of showing its own
    shown = f"{record['random_distances']['l2_logits']:.4f}"
    assert "random baseline's distance above" in text and shown in text
    assert squash(dom.by_id("verdict").text).count(shown) == 1


@needs_browser
def test_a_survivor_whose_parts_cancel_is_not_a_plain_green_survives(records, reports):
    assert records["cancelling"]["verdict"]["status"] == "survives" and records["cancelling"]["verdict"]["cancels"]
    verdict = dom_of(reports["cancelling"]).by_id("verdict")
    assert "survives" not in verdict.attrs["class"].split()
    badge = squash(verdict.find_all("span", **{"class": "badge other"})[0].text)
    assert badge == "survives, flagged: the parts it leaves out cancel"
    assert "the parts it leaves out cancel; see the cancel-out report" in squash(verdict.text)
    assert "with independent draws (l2_logits)" in squash(verdict.text)


@needs_browser
def test_record_text_is_escaped_not_executed(records, tmp_path):
    r = copy.deepcopy(records["cancelling"])
    r["name"] = EVIL
    r["loss"] = EVIL
    r["data"]["name"] = EVIL
    r["verdict"]["flags"] = [EVIL]
    r["verdict"]["text"] = f"rejected: {EVIL}"
    r["hypothesis_graph"]["nodes"][1]["name"] = EVIL
    r["hypothesis_graph"]["nodes"][1]["paths"] = [EVIL]
    r["cancel"]["sets"][0]["components"][0] = EVIL
    r["summary"][EVIL] = r["summary"]["loss_recovered"]
    r["per_datum"]["distances"] = {EVIL: r["per_datum"]["distances"]["l2_logits"]}
    r["verdict"]["distance"] = EVIL
    path = write_report(r, tmp_path)
    assert "<script" not in path.read_text()
    dom = dom_of(path)
    assert not dom.find_all("script")
    assert EVIL in dom.by_id("verdict").find_all("h1")[0].text
    assert EVIL in dom.by_id("graph").text and EVIL in dom.by_id("cancel").text
    assert EVIL in dom.by_id("distance").text


@needs_browser
def test_screenshot_is_a_real_picture(reports, tmp_path):
    png = tmp_path / "report.png"
    chromium(reports["transformer"].resolve().as_uri(), f"--screenshot={png}", "--window-size=1200,2000")
    assert png.exists() and png.stat().st_size > 20_000
    width, height, rows = decode_png(png.read_bytes(), max_rows=500)
    assert (width, height) == (1200, 2000)
    colours = {px for row in rows for px in row}
    assert len(colours) > 20, f"screenshot looks blank: {len(colours)} colours in its top rows"


@needs_browser
def test_compare_report_ranks_hypotheses(tmp_path):
    record = build_ranking_record(EVIL)
    path = write_report(record, tmp_path)
    dom = dom_of(path)
    assert not dom.find_all("script")
    rows = dom.by_id("ranking").find_all("tr")[1:]
    assert [squash(r.find_all("td")[1].text) for r in rows] == [r["name"] for r in record["rows"]]
    assert [r.attrs["class"] for r in rows] == ["survives" if r["survives"] else "rejected" for r in record["rows"]]


# ---------------------------------------------------------------- without a browser

def test_none_values_and_missing_parts_render_as_na(records):
    r = copy.deepcopy(records["cancelling"])
    for est in r["summary"].values():
        est.update(value=None, low=None, high=None, seed_low=None, seed_high=None)
    r["random_distances"] = {k: None for k in r["random_distances"]}
    r["per_datum"] = {"scrub_loss": [], "model_loss": [None], "random_loss": [], "distances": {}}
    r["timing"] = {"seconds": None, "finished": None}
    r["cancel"]["sets"] = []
    r["cancel"]["search"] = {}
    r["independent_check"] = None
    page = render_html(r)
    assert "n/a" in page and "no cancel-out sets found" in page and "no values to plot" in page
    assert "independent-draw check: not run" in page
    assert "no per-datum values for the output distance" in page
    r["cancel"] = None
    assert "no cancel-out report for this run" in render_html(r)
    bare = render_html({"schema": "scrub.result/1", "name": "bare"})
    for ident in (*SECTIONS, "footer"):
        assert f'id="{ident}"' in bare
    with pytest.raises(TypeError, match="result record"):
        render_html(None)  # type: ignore[arg-type]
    assert 'id="ranking"' in render_compare_html({"schema": "scrub.compare/1", "rows": [{"name": None}]})


def test_page_is_self_contained(records):
    page = render_html(records["transformer"])
    assert "<script" not in page and "<link" not in page and "url(" not in page and "@import" not in page
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith("#"), f"external reference in the report: {attr}"
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_write_report_is_atomic_and_overwrites(records, tmp_path):
    folder = tmp_path / "new" / "run"
    first = write_report(records["cancelling"], folder)
    assert first == folder / "report.html" and first.read_text().startswith("<!DOCTYPE html>")
    r = dict(records["cancelling"], name="second")
    assert write_report(r, folder) == first and "second" in first.read_text()
    assert [p.name for p in folder.iterdir()] == ["report.html"]  # no temp file left behind


def test_svg_primitives_survive_odd_inputs():
    empty = histogram({"a": [], "b": [None, float("nan")]}, title="t")
    assert "no values to plot" in empty
    flat = histogram({"a": [2.0, 2.0, 2.0]}, markers={"m": None, "k": 2.0})
    assert flat.count('class="bar"') == 1 and flat.count('class="marker"') == 1
    with pytest.raises(ValueError, match="mode"):
        histogram({"a": [1.0]}, mode="stacked")
    nodes = [{"name": "root", "parent": None, "paths": ["output"], "sampler": "exact"}]
    nodes += [{"name": f"n{i}", "parent": "root" if i < 6 else f"n{i % 6}", "sampler": "exact",
               "paths": [f"output <- head.{i}.{j}" for j in range(i % 7)]} for i in range(29)]
    nodes.append({"name": "loop", "parent": "loop", "paths": [], "sampler": "exact"})  # a self-parent
    svg = tree(nodes)
    for n in nodes:
        assert f'data-name="{n["name"]}"' in svg
    assert "(no paths)" in svg and "+3 more" not in svg  # every path is drawn, none summarised
    for n in nodes:
        for p in n["paths"]:
            assert f'data-full="{p.replace("<", "&lt;")}"' in svg
    assert svg.count('class="edge"') == len(nodes) - 2  # two roots: "root" and the self-parented "loop"


# ---------------------------------------------------------------- layout, measured in the browser

MEASURE = """<pre id="measure"></pre><script>
const out = {nodes: [], overflow: [], breaks: [], svg: null};
const svg = document.getElementById('graph-svg');
const vb = svg.viewBox.baseVal;
out.svg = {w: vb.width, h: vb.height, attrW: svg.width.baseVal.value, scrollW: svg.parentElement.scrollWidth};
for (const g of svg.querySelectorAll('g.node')) {
  const r = g.querySelector('rect').getBBox();
  const texts = [...g.querySelectorAll('text')].map(t => {
    const b = t.getBBox(); return {kind: t.getAttribute('class'), full: t.dataset.full, shown: t.textContent,
                                   x: b.x, y: b.y, w: b.width, h: b.height};});
  out.nodes.push({name: g.dataset.name, rect: {x: r.x, y: r.y, w: r.width, h: r.height}, texts});
}
for (const el of document.querySelectorAll('main *')) {
  if (el.closest('svg') || el.closest('.scroll') || el.id === 'measure') continue;
  if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible')
    out.overflow.push(el.tagName + '#' + el.id + '.' + el.className);
}
for (const td of document.querySelectorAll('td.code')) {
  const t = td.firstChild; if (!t || t.nodeType !== 3) continue;
  const range = document.createRange(); let top = null;
  for (let i = 0; i < t.length; i++) {
    range.setStart(t, i); range.setEnd(t, i + 1);
    const rects = range.getClientRects(); if (!rects.length) continue;
    const y = rects[0].top;
    if (top !== null && y > top + 2 && t.data[i - 1] !== ' ' && t.data[i] !== ' ') out.breaks.push(t.data);
    top = y;
  }
}
document.getElementById('measure').textContent = JSON.stringify(out);
</script>"""


def measured(path: Path, tmp_path: Path, width: int = 1200) -> dict:
    """The report's layout as Chromium lays it out (a test-only copy of the page with a measuring script)."""
    import json

    probe = tmp_path / "measured.html"
    probe.write_text(path.read_text().replace("</main>", MEASURE + "</main>"))
    b = DomBuilder()
    b.feed(chromium(probe.resolve().as_uri(), "--dump-dom", f"--window-size={width},900", "--virtual-time-budget=5000"))
    return json.loads(b.root.by_id("measure").text)


def long_paths_record(records) -> dict:
    """A wide, deep graph with long multi-hop claims and a cancel table of long paths."""
    r = copy.deepcopy(records["cancelling"])
    hops = " <- ".join(f"head.{layer}.{h}.{port}" for layer, h, port in [(11, 10, "k"), (9, 3, "v"), (7, 11, "q")])
    nodes = [{"name": "output", "parent": None, "depth": 0, "paths": ["output"], "sampler": "exact", "leaf": False}]
    for i in range(14):
        nodes.append({"name": f"induction heads of layer {i} with a long name", "parent": "output", "depth": 1,
                      "paths": [f"output <- head.{i}.{j} <- {hops}" for j in range(1 + i % 4)],
                      "sampler": "agree(tokens_at([3, 5, 7, 11, 13]))", "leaf": i % 3 != 0})
        if i % 3 == 0:
            nodes.append({"name": f"child {i}", "parent": f"induction heads of layer {i} with a long name",
                          "depth": 2, "paths": [f"output <- head.{i}.0 <- {hops} <- embed"], "sampler": "exact",
                          "leaf": True})
    r["hypothesis_graph"]["nodes"] = nodes
    for p in r["cancel"]["pairs"]:
        p["a"], p["b"] = f"output <- head.11.10 <- {hops}", f"output <- head.10.2 <- {hops} <- embed"
    for c in r["cancel"]["components"]:
        c["component"] = f"output <- head.11.10 <- {hops} <- pos_embed"
    return r


@needs_browser
def test_every_claim_is_shown_in_full_and_nothing_overflows(records, tmp_path):
    record = long_paths_record(records)
    path = write_report(record, tmp_path / "report")
    got = measured(path, tmp_path)
    nodes = {n["name"]: n for n in got["nodes"]}
    assert set(nodes) == {n["name"] for n in record["hypothesis_graph"]["nodes"]}
    for spec in record["hypothesis_graph"]["nodes"]:
        box = nodes[spec["name"]]
        paths = [t for t in box["texts"] if t["kind"] == "node-path"]
        assert [t["full"] for t in paths] == spec["paths"]  # every path, in order
        for t in box["texts"]:
            assert "".join(t["shown"].split()) == "".join(t["full"].split())  # wrapped, never cut
            r = box["rect"]
            assert r["x"] <= t["x"] and t["x"] + t["w"] <= r["x"] + r["w"] + 0.5, (spec["name"], t)
            assert r["y"] <= t["y"] and t["y"] + t["h"] <= r["y"] + r["h"] + 0.5, (spec["name"], t)
    rects = sorted((n["rect"] for n in got["nodes"]), key=lambda r: (r["y"], r["x"]))
    for a, b in zip(rects, rects[1:]):  # boxes of one row do not overlap
        if a["y"] == b["y"]:
            assert a["x"] + a["w"] <= b["x"], (a, b)
    right = max(n["rect"]["x"] + n["rect"]["w"] for n in got["nodes"])
    assert right <= got["svg"]["w"] and got["svg"]["attrW"] == got["svg"]["w"]  # a wide tree is not cut
    assert got["svg"]["w"] > 1200  # ... and it is wide: its container scrolls
    assert got["overflow"] == []
    assert got["breaks"] == []  # table cells break paths between hops, never inside one


# ---------------------------------------------------------------- a minimal PNG reader (stdlib only)

def decode_png(data: bytes, max_rows: int) -> tuple[int, int, list[list[tuple]]]:
    """Width, height and the first max_rows rows of pixels of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    assert depth == 8 and channels and not interlace, f"unsupported PNG layout {header}"
    raw = zlib.decompressobj().decompress(b"".join(idat))
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(min(height, max_rows)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + channels]) for x in range(0, stride, channels)])
        prev = line
    return width, height, rows
