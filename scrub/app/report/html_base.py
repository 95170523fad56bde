"""Shared pieces of the HTML reports: number formatting, tables, the page shell and its CSS.

Kept apart from html.py so each file stays small. Everything here takes
plain record values (possibly None: JSON has no NaN) and escapes all text.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from scrub.app.report.svg import esc

NA = "n/a"

CSS = """
:root { --ok: #1f7a3a; --ok-bg: #e7f5ea; --bad: #b3261e; --bad-bg: #fdecea; --mid: #8a5a00; --mid-bg: #fff4dc;
        --ink: #1d1d1f; --muted: #666; --rule: #ddd; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 26px; margin: 4px 0 8px; word-break: break-word; }
h2 { font-size: 19px; margin: 0 0 10px; }
section, footer { background: #fff; border: 1px solid var(--rule); border-radius: 8px; padding: 16px 20px;
                  margin: 16px 0; }
.kicker { color: var(--muted); font-size: 13px; text-transform: uppercase; letter-spacing: .06em; }
.verdict.survives { border-left: 8px solid var(--ok); background: var(--ok-bg); }
.verdict.rejected { border-left: 8px solid var(--bad); background: var(--bad-bg); }
.verdict.other { border-left: 8px solid var(--mid); background: var(--mid-bg); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 700; font-size: 13px;
         text-transform: uppercase; letter-spacing: .05em; color: #fff; background: var(--mid); }
.badge.survives { background: var(--ok); } .badge.rejected { background: var(--bad); }
.verdict-text { font-size: 16px; margin: 8px 0; }
.flag { display: inline-block; margin: 2px 6px 2px 0; padding: 1px 8px; border-radius: 4px; font-size: 13px;
        background: #fff; border: 1px solid var(--bad); color: var(--bad); }
.keynums { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 10px 0 4px; }
.keynums div { font-size: 13px; color: var(--muted); }
.keynums b { display: block; font-size: 18px; color: var(--ink); font-variant-numeric: tabular-nums; }
.rule, .note { color: var(--muted); font-size: 13px; }
nav { font-size: 13px; } nav a { margin-right: 12px; color: #4269d0; text-decoration: none; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #fafafa; font-weight: 600; border-bottom: 1px solid var(--rule); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.code, .code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
td.code { white-space: pre-wrap; overflow-wrap: normal; word-break: normal; }  /* paths break between hops only */
tr.survives td.status { color: var(--ok); font-weight: 700; }
tr.rejected td.status { color: var(--bad); font-weight: 700; }
.scroll { overflow-x: auto; }
.scroll svg { max-width: none; }
svg { max-width: 100%; height: auto; }
dl.words { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px; margin: 8px 0; }
dl.words dt { font-weight: 600; } dl.words dd { margin: 0; color: var(--muted); }
tr.other td.status { color: var(--mid); font-weight: 700; }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; font-size: 13px; }
footer dt { color: var(--muted); } footer dd { margin: 0; word-break: break-word; }
"""


def num(x: Any) -> Optional[float]:
    """A finite float, or None for None, NaN, infinities and non-numbers."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(x: Any, pct: bool = False) -> str:
    """Fixed decimals for ordinary magnitudes (aligned columns), scientific for tiny or huge ones."""
    f = num(x)
    if f is None:
        return NA
    if pct:
        return f"{100 * f:.1f}%"
    if f == 0:
        return "0"
    if abs(f) >= 1e5 or abs(f) < 1e-3:
        return f"{f:.3e}"
    return f"{f:.4f}"


def is_fraction(metric: str) -> bool:
    """Recovered fractions read best as percentages."""
    return metric == "loss_recovered" or metric.endswith("_recovered")


def interval(est: Optional[Mapping], low: str = "low", high: str = "high", pct: bool = False) -> str:
    if not isinstance(est, Mapping) or (num(est.get(low)) is None and num(est.get(high)) is None):
        return NA
    return f"[{fmt(est.get(low), pct)}, {fmt(est.get(high), pct)}]"


def value(est: Optional[Mapping], pct: bool = False) -> str:
    return fmt(est.get("value") if isinstance(est, Mapping) else None, pct)


def est_cell(est: Optional[Mapping], pct: bool = False, inline: bool = False) -> str:
    """The value and its interval as html: over two lines in table cells (keeps wide tables narrow)."""
    iv = interval(est, pct=pct)
    sep = " " if inline else "<br>"
    return esc(value(est, pct)) + ("" if iv == NA else f"{sep}<span class=\"note\">{esc(iv)}</span>")


def status_class(status: Any) -> str:
    return status if status in ("survives", "rejected") else "other"


def table(header: Sequence[tuple[str, str]], rows: Sequence[Sequence[tuple[str, str]]],
          row_classes: Optional[Sequence[str]] = None, table_id: Optional[str] = None) -> str:
    """An HTML table. header: (text, css class); rows: (already-escaped html, css class) cells."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f'<th class="{c}">{esc(t)}</th>' for t, c in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{c}">{h}</td>' for h, c in row) + "</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_text(d: Any) -> str:
    """A dict as 'key=value, ...' (escaped); other values str()-ed; None as n/a."""
    if d is None:
        return NA
    if isinstance(d, Mapping):
        return esc(", ".join(f"{k}={NA if v is None else v}" for k, v in d.items())) or NA
    if isinstance(d, (list, tuple)):
        return esc(", ".join(str(v) for v in d)) or NA
    return esc(d)


def page(title: str, body: str) -> str:
    """A complete self-contained document: inline CSS, no scripts, no external URLs."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
