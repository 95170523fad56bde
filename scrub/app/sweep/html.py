"""`sweep.html`: a sweep's points ranked, with Holm's correction across the sweep, from a "scrub.sweep/1" record.

Built from the report pieces of `scrub.app.report.html_base` (one self-contained page, every string
escaped); each point links to its own report.html beside it.
"""

from __future__ import annotations

from typing import Mapping

from scrub.app.report.html_base import NA, est_cell, fmt, kv_text, page, status_class, table
from scrub.app.report.svg import esc


def render_sweep_html(record: Mapping) -> str:
    counts = record.get("counts") or {}
    head = (f'<section id="sweep"><div class="kicker">scrub: sweep</div><h1>{esc(record.get("name") or NA)}</h1>'
            + (f'<p>{esc(record["description"])}</p>' if record.get("description") else "")
            + f'<p>{esc(counts.get("points", 0))} points: {esc(counts.get("done", 0))} done, '
              f'{esc(counts.get("failed", 0))} failed, {esc(counts.get("pending", 0))} not run yet. '
              f'Axes: {kv_text(record.get("axes")) if record.get("axes") else "none"}.</p>'
            + f'<p class="note">sweep file {kv_text(record.get("sweep_file"))} '
              f'<span class="code">sha256 {esc(record.get("sweep_sha256") or NA)}</span></p></section>')
    return page(f"scrub sweep: {record.get('name') or ''}", head + _ranking(record) + _unfinished(record))


def _ranking(record: Mapping) -> str:
    rows, classes = [], []
    for r in record.get("ranking") or []:
        status = "survives" if r.get("survives") else "rejected"
        classes.append(status_class(status))
        link = f'<a href="{esc(r.get("folder"))}/report.html">{esc(r.get("point"))}</a>'
        rows.append([(esc(r.get("rank")), "num"), (link, ""), (esc(status), "status"),
                     (esc(fmt(r.get("p_value"))), "num"), (esc(fmt(r.get("p_holm"))), "num"),
                     (est_cell(r.get("loss_recovered"), pct=True), "num"),
                     (esc(fmt(r.get("min_loss_recovered"), pct=True)), "num"),
                     (est_cell(r.get("distance")) + f'<br><span class="note">{esc(r.get("distance_name") or NA)}'
                      '</span>', "num"),
                     (esc(r.get("verdict_text") or NA), "")])
    header = [("rank", "num"), ("point", ""), ("Holm", ""), ("p", "num"), ("p (Holm)", "num"),
              ("loss recovered", "num"), ("threshold", "num"), ("distance", "num"), ("its own verdict", "")]
    family = f"{len(rows)} finished point" + ("s" if len(rows) != 1 else "")
    note = (f'<p class="note">Each finished point tests "loss recovered above its threshold" (one-sided bootstrap '
            f'p-value); Holm\'s correction runs across the {family} of the sweep at family-wise level '
            f'{esc(fmt(record.get("alpha")))}. A point survives when its adjusted p-value is below that level and '
            'its output distance passes its rule; "its own verdict" is the point\'s uncorrected verdict (its '
            'report.html).'
            + (" Points that did not finish are not in the family yet: rerun the sweep to complete it." if
               (record.get("counts") or {}).get("done", 0) < (record.get("counts") or {}).get("points", 0) else "")
            + "</p>")
    body = table(header, rows, row_classes=classes, table_id="ranking-table") if rows else \
        '<p class="note">no finished points yet</p>'
    return f'<section id="ranking"><h2>Ranking</h2>{note}<div class="scroll">{body}</div></section>'


def _unfinished(record: Mapping) -> str:
    rows = []
    for p in record.get("points") or []:
        if p.get("status") == "done":
            continue
        error = str(p.get("error") or "").strip()
        last = error.splitlines()[-1] if error else "not run yet"
        rows.append([(esc(p.get("point")), ""), (esc(p.get("status")), "status"),
                     (f'<span class="code">{esc(last)}</span>' + (f' <a href="{esc(p.get("folder"))}/error.txt">'
                                                                   'full error</a>' if error else ""), "")])
    if not rows:
        return ""
    body = table([("point", ""), ("status", ""), ("error", "")], rows, table_id="unfinished-table")
    return (f'<section id="unfinished"><h2>Not finished</h2><p class="note">Rerun the same command to compute '
            f'these (finished points are not recomputed).</p><div class="scroll">{body}</div></section>')
