"""The self-contained HTML run report, drawn from a result record ("scrub.result/1").

One file, no scripts, no external URLs: it opens from disk anywhere and can be
attached to an issue or a paper's supplement. Sections carry stable ids
(verdict, summary, graph, losses, distance, cancel, footer) for tests and links.
Every string from the record is escaped: hypothesis and node names are user text.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Union

from scrub.app.outputs import write_atomic
from scrub.app.report import graph_svg, svg
from scrub.app.report.html_base import (NA, est_cell, fmt, interval, is_fraction, kv_text, num, page,
                                    status_class, table, value)
from scrub.app.report.svg import esc

SECTIONS = ("verdict", "summary", "graph", "losses", "distance", "cancel")


def _get(d: Any, *keys: str) -> Any:
    """Nested .get that tolerates missing levels and non-dict values."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _badge(v: Mapping) -> tuple[str, str]:
    """(css class, badge text): a survivor with flags is amber, never a plain green "survives"."""
    status = v.get("status") or "unknown"
    if status == "survives" and v.get("flags"):
        return "other", "survives, flagged" + (": the parts it leaves out cancel" if v.get("cancels") else "")
    return status_class(status), status


def _verdict(r: Mapping) -> str:
    v = r.get("verdict") if isinstance(r.get("verdict"), Mapping) else {}
    status = v.get("status") or "unknown"
    cls, badge = _badge(v)
    text = str(v.get("text") or status)
    # the verdict text usually quotes its reasons already; list them only when it does not
    reasons = "".join(f"<li>{esc(x)}</li>" for x in v.get("reasons") or [] if str(x) not in text)
    flags = "".join(f'<span class="flag">{esc(x)}</span>' for x in v.get("flags") or [])
    lr = _get(r, "summary", "loss_recovered")
    dist = v.get("distance")
    checked = (r.get("distance_checked") or _get(r, "summary", dist)) if dist else None
    rand = _get(r, "random_distances", dist) if dist else None
    keynums = [("loss recovered", value(lr, pct=True), interval(lr, pct=True))]
    if dist:
        keynums.append((f"output distance ({dist})", value(checked), interval(checked)))
        check = r.get("independent_check") if isinstance(r.get("independent_check"), Mapping) else None
        if check:
            keynums.append((f"with independent draws ({dist})", value(check.get("value")),
                            interval(check.get("value"))))
        keynums.append((f"random baseline {dist}", fmt(rand), "mean"))
    nums = "".join(f"<div>{esc(label)}<b>{esc(val)}</b>{esc(sub)}</div>" for label, val, sub in keynums)
    rule = _get(v, "rule", "description")
    return (f'<section id="verdict" class="verdict {cls}">'
            f'<div class="kicker">scrub: causal scrubbing report</div>'
            f'<h1 class="hypothesis-name">{esc(r.get("name") or "(unnamed hypothesis)")}</h1>'
            f'<span class="badge {cls}">{esc(badge)}</span>'
            f'<p class="verdict-text">{esc(text)}</p>'
            + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
            + (f'<div class="flags">flags: {flags}</div>' if flags else '<div class="flags note">no flags</div>')
            + f'<div class="keynums">{nums}</div>'
            + (f'<p class="rule">rule: {esc(rule)}</p>' if rule else "")
            + _check_note(r.get("independent_check"), v.get("distance"))
            + "</section>")


def _check_note(check, dist) -> str:
    """One line on the independent-draw check: what it is and the margin used."""
    if not isinstance(check, Mapping):
        return '<p class="rule">independent-draw check: not run (nothing unexplained, or every node already ' \
               'draws independently)</p>'
    margin = num(check.get("margin"))
    return (f'<p class="rule">independent-draw check: the hypothesis scored again with each of its '
            f'{esc(check.get("edges", NA))} unexplained inputs on its own draw; the parts it leaves out are '
            f'flagged as cancelling when the lower 95% bound of (independent - shared {esc(dist or NA)}) exceeds '
            f'{esc(fmt(margin, pct=True) if margin is not None else NA)} of the random baseline\'s distance '
            f'(currently {est_cell(check.get("excess"), inline=True)}; change it with the spec\'s '
            f'<span class="code">verdict: {{independent_margin: ...}}</span>).</p>')


def _summary(r: Mapping) -> str:
    summary = r.get("summary") if isinstance(r.get("summary"), Mapping) else {}
    if not summary:
        return '<section id="summary"><h2>Summary</h2><p class="note">no summary metrics in this record</p></section>'
    levels = {_get(e, "level") for e in summary.values()}
    common = levels.pop() if len(levels) == 1 else None
    level_head = f"{100 * common:g}% interval" if num(common) is not None else "interval"
    seeds = any(num(_get(e, "seed_low")) is not None or num(_get(e, "seed_high")) is not None
                for e in summary.values())
    randoms = r.get("random_distances") if isinstance(r.get("random_distances"), Mapping) else {}
    header = [("metric", ""), ("value", "num"), (level_head, "num")]
    header += [("per-seed range", "num")] if seeds else []
    header += [("random baseline", "num")] if randoms else []
    rows = []
    for name, est in summary.items():
        pct = is_fraction(str(name))
        iv = interval(est, pct=pct)
        if common is None and num(_get(est, "level")) is not None and iv != NA:
            iv += f" ({100 * num(_get(est, 'level')):g}%)"
        row = [(esc(name), "code"), (esc(value(est, pct)), "num"), (esc(iv), "num")]
        if seeds:
            row.append((esc(interval(est, "seed_low", "seed_high", pct)), "num"))
        if randoms:
            row.append((esc(fmt(randoms[name])) if name in randoms else "", "num"))
        rows.append(row)
    note = ('<p class="note" id="intervals-note">The verdict uses the interval column: a bootstrap over reference '
            "data, each datum carrying its values under every seed, so it covers both the choice of data and the "
            "resampling; it is an interval for the value shown, the mean over all seeds. "
            + ("The per-seed range is the smallest and largest value of single seeds: how much one run moves with "
               "its seed. It does not enter the verdict, and single seeds may fall outside the interval, which is "
               "for the mean of all of them. " if seeds else "")
            + "Recovered fractions are percentages.</p>")
    return f'<section id="summary"><h2>Summary</h2>{table(header, rows, table_id="summary-table")}{note}</section>'


def _graph(r: Mapping) -> str:
    g = r.get("hypothesis_graph") if isinstance(r.get("hypothesis_graph"), Mapping) else {}
    nodes = [n for n in g.get("nodes") or [] if isinstance(n, Mapping)]
    policy = g.get("policy")
    note = f'<p class="note">{len(nodes)} node{"s" if len(nodes) != 1 else ""}' \
           + (f"; sampling policy: {esc(policy)}" if policy else "") \
           + "; leaves are green; each box shows the node's sampler and every path it claims. Hover a box for its " \
           + "policy and other inputs.</p>"
    return (f'<section id="graph"><h2>Hypothesis graph</h2>{note}'
            f'<div class="scroll">{graph_svg.tree(nodes, svg_id="graph-svg")}</div></section>')


def _losses(r: Mapping) -> str:
    pd = r.get("per_datum") if isinstance(r.get("per_datum"), Mapping) else {}
    series = {"model": pd.get("model_loss") or [], "scrubbed": pd.get("scrub_loss") or [],
              "random baseline": pd.get("random_loss") or []}
    loss = r.get("loss") or "loss"
    plot = svg.histogram(series, title=f"per-datum {loss}", xlabel=str(loss), mode="grouped", svg_id="losses-svg")
    return (f'<section id="losses"><h2>Per-datum losses</h2><p class="note">One value per reference datum '
            f'(averaged over seeds) for the model, the scrubbed model and the random baseline.</p>'
            f'<div class="scroll">{plot}</div></section>')


def _distance(r: Mapping) -> str:
    dist = _get(r, "verdict", "distance")
    values = _get(r, "per_datum", "distances", dist) if dist else None
    head = f'<section id="distance"><h2>Output distance{f" ({esc(dist)})" if dist else ""}</h2>'
    if not dist or not values:
        return head + f'<p class="note">no per-datum values for the output distance {esc(dist or NA)}</p></section>'
    rand = num(_get(r, "random_distances", dist))
    markers: dict[str, Optional[float]] = {"random baseline mean": rand}
    frac = num(_get(r, "verdict", "rule", "max_distance_fraction"))
    if rand is not None and frac is not None:
        markers[f"rule threshold ({100 * frac:g}% of random)"] = rand * frac
    plot = svg.histogram({f"scrubbed vs model ({dist})": values}, title=f"per-datum {dist}", xlabel=str(dist),
                         markers=markers, svg_id="distance-svg")
    return head + ('<p class="note">Distance between the scrubbed and the original model\'s outputs, per reference '
                   'datum; dashed lines mark the random baseline\'s mean and the rule\'s threshold.</p>'
                   f'<div class="scroll">{plot}</div></section>')


CANCEL_WORDS = (
    ("component", "an input of a claimed site that no child claims: something the hypothesis leaves out."),
    ("scrubbed alone", "with everything else the hypothesis leaves out restored (computed on the real datum), "
     "scrubbing just this component moves the output this much further from the model. Large means it "
     "matters on its own."),
    ("restored alone", "the hypothesis' distance minus its distance with just this component restored: how much "
     "closer restoring it alone brings the hypothesis. It is negative when restoring it makes things worse: "
     "if it cancels with parts that stay scrubbed on the shared draw, restoring one of them breaks the "
     "cancellation (b(x) - c(r) instead of b(r) - c(r))."),
    ("together", "every member of the set scrubbed at once, everything else restored."),
    ("cancelled", "the smallest member's effect alone minus the effect together."),
)


def _cancel(r: Mapping) -> str:
    c = r.get("cancel")
    head = '<section id="cancel"><h2>Cancel-out report</h2>'
    if not isinstance(c, Mapping):
        return head + '<p class="note">no cancel-out report for this run</p></section>'
    dist = c.get("distance") or NA
    scale = num(c.get("random_distance"))
    shown = num(_get(r, "random_distances", dist))
    if shown is not None and scale is not None and abs(shown - scale) <= 1e-9 * max(1.0, abs(shown)):
        baseline = f"the random baseline's distance above ({esc(fmt(shown))})"
    else:
        baseline = f"the random baseline's distance in this report's run ({esc(fmt(scale))})"
    seeds = c.get("seeds")
    intro = (f'<p>Every number is a change in output distance ({esc(dist)}) to the model, measured on the same '
             f'draws (paired per datum){f", seeds {kv_text(seeds)}" if seeds else ""}; sizes are judged against '
             f'{baseline}. Leaving out every unexplained component together: '
             f'{est_cell(c.get("joint"), inline=True)}.</p>')
    words = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in CANCEL_WORDS)
    settings = c.get("settings") if isinstance(c.get("settings"), Mapping) else {}
    rules = (f'<p class="note">Thresholds: {esc(settings.get("description") or NA)}. Change them in the spec\'s '
             '<span class="code">cancel:</span> mapping (min_effect, max_joint, max_size, max_components, '
             'max_candidates) or as keywords of <span class="code">metrics.cancel_out_report</span>.</p>')
    search = c.get("search") if isinstance(c.get("search"), Mapping) else {}
    cost = (f'<p class="note">Search: {esc(search.get("large", NA))} of {esc(search.get("components", NA))} '
            f'components large alone; {esc(search.get("candidates", NA))} candidate sets predicted to cancel; '
            f'{esc(search.get("measured_sets", NA))} sets measured; {esc(search.get("variants", NA))} variants '
            f'scored.</p>') if search else ""
    comps = [x for x in c.get("components") or [] if isinstance(x, Mapping)]
    if comps:
        rows = [[(esc(x.get("component")), "code"), (esc(x.get("node")), ""),
                 (est_cell(x.get("scrubbed_alone")), "num"), (est_cell(x.get("restored_alone")), "num")]
                for x in comps]
        ctab = table([("component", ""), ("node", ""), ("scrubbed alone [95%]", "num"),
                      ("restored alone [95%]", "num")], rows, table_id="cancel-components")
    else:
        ctab = '<p class="note">no unexplained components</p>'
    sets = [x for x in c.get("sets") or [] if isinstance(x, Mapping)]
    if sets:
        rows = [[(str(i), "num"), ("".join(f"<div>{esc(m)}</div>" for m in x.get("components") or []), "code"),
                 ("".join(f"<div>{est_cell(e, inline=True)}</div>" for e in x.get("effects") or []), "num"),
                 (est_cell(x.get("joint")), "num"), (est_cell(x.get("cancelled")), "num")]
                for i, x in enumerate(sets, 1)]
        stab = table([("#", "num"), ("components", ""), ("each alone [95%]", "num"), ("together [95%]", "num"),
                      ("cancelled [95%]", "num")], rows, table_id="cancel-sets")
    else:
        stab = '<p class="note">no cancel-out sets found</p>'
    return (head + intro + f'<dl class="words">{words}</dl>' + rules + cost
            + "<h3>Cancel-out sets (ranked by the amount cancelled)</h3>"
            + '<p class="note">Sets of components each large alone whose effect together is small, and no '
              'smaller group of which is: the hypothesis may look right only because what it leaves out '
              'cancels.</p>'
            + f'<div class="scroll">{stab}</div>'
            + "<h3>Unexplained components</h3>" + f'<div class="scroll">{ctab}</div></section>')


def _footer(r: Mapping) -> str:
    timing = r.get("timing") if isinstance(r.get("timing"), Mapping) else {}
    secs = num(timing.get("seconds"))
    spec = r.get("spec_file")
    sha = r.get("spec_sha256")
    items = [("seeds", kv_text(r.get("seeds"))), ("data", kv_text(r.get("data"))),
             ("model", kv_text(r.get("model"))), ("loss", kv_text(r.get("loss"))),
             ("spec file", kv_text(spec) + (f' <span class="code">sha256 {esc(sha)}</span>' if sha else "")),
             ("versions", kv_text(r.get("versions"))),
             ("timing", esc(f"{secs:.2f} s" if secs is not None else NA)
              + (f", finished {esc(timing.get('finished'))}" if timing.get("finished") else "")),
             ("schema", kv_text(r.get("schema")))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<footer id="footer"><h2>Run</h2><dl>{dl}</dl></footer>'


def render_html(record: Mapping) -> str:
    """The report page for one "scrub.result/1" record, as a string."""
    if not isinstance(record, Mapping):
        raise TypeError(f"render_html needs a result record (a dict), got {type(record).__name__}")
    nav = "<nav>" + "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS[1:]) + "</nav>"
    body = (_verdict(record) + nav + _summary(record) + _graph(record) + _losses(record) + _distance(record)
            + _cancel(record) + _footer(record))
    return page(f"scrub report: {record.get('name') or '(unnamed)'}", body)


def render_compare_html(record: Mapping) -> str:
    """A ranked table for a "scrub.compare/1" record (several hypotheses, one rule)."""
    if not isinstance(record, Mapping):
        raise TypeError(f"render_compare_html needs a comparison record (a dict), got {type(record).__name__}")
    rows, classes = [], []
    for row in record.get("rows") or []:
        if not isinstance(row, Mapping):
            continue
        survives = row.get("survives")
        status = "survives" if survives is True else "rejected" if survives is False else NA
        classes.append(status_class(status) if not (survives and row.get("flags")) else "other")
        if survives and row.get("flags"):
            status = "survives, flagged"
        rows.append([(esc(row.get("rank", NA)), "num"), (esc(row.get("name") or NA), ""), (esc(status), "status"),
                     (esc(fmt(row.get("p_value"))), "num"), (esc(fmt(row.get("p_holm"))), "num"),
                     (est_cell(row.get("loss_recovered"), pct=True), "num"), (est_cell(row.get("distance")), "num"),
                     (esc(row.get("verdict") or NA), "")])
    header = [("rank", "num"), ("hypothesis", ""), ("status", ""), ("p", "num"), ("p (Holm)", "num"),
              ("loss recovered", "num"), (f"distance ({record.get('distance') or NA})", "num"), ("verdict", "")]
    tab = table(header, rows, row_classes=classes) if rows else '<p class="note">no hypotheses in this comparison</p>'
    meta = (f'<p class="note">alpha {esc(fmt(record.get("alpha")))}; rule: {esc(record.get("rule") or NA)}; '
            f'spec files: {kv_text(record.get("spec_files"))}</p>')
    body = (f'<section id="ranking"><div class="kicker">scrub: hypothesis comparison</div>'
            f'<h1>Ranked hypotheses</h1>{meta}<div class="scroll">{tab}</div></section>')
    return page("scrub comparison", body)


def write_report(record: Mapping, folder: Union[str, os.PathLike]) -> pathlib.Path:
    """Write report.html into folder (created if needed) atomically: a temp file, then rename.

    Comparison records ("scrub.compare/1") get the ranked-table page.
    """
    is_compare = isinstance(record, Mapping) and str(record.get("schema", "")).startswith("scrub.compare/")
    text = render_compare_html(record) if is_compare else render_html(record)
    target = pathlib.Path(folder) / "report.html"
    write_atomic(target, text.encode("utf-8"))  # permissions from the umask, like result.json beside it
    return target
