"""`scrub sweep SWEEP.yaml`: read and check every point, run them (driver.py), print the ranking.

Every point is read as a spec file before Ray starts, so a mistake in the sweep file or a spec stops
the sweep at once, located in its file. `--check` goes further: it loads every point's model and data
and checks the hypothesis against them here, as `scrub validate` does, and runs nothing.
"""

from __future__ import annotations

import pathlib
from typing import Callable, Optional

from scrub.app.spec import SpecError, prepare
from scrub.app.sweep.driver import SweepOptions, SweepOutcome, run_sweep
from scrub.app.sweep.points import Point, blame, expand
from scrub.app.sweep.sweep_file import SweepFile, load_sweep
from scrub.errors import ScrubError

from metrics.table import format_table


def sweep_command(path: pathlib.Path, options: SweepOptions, check_only: bool = False,
                  echo: Callable[[str], None] = print) -> Optional[SweepOutcome]:
    if options.serial and options.address:
        raise ScrubError("--serial runs the points in this process, without Ray: leave out --address or --serial.")
    if options.address and options.num_cpus:
        raise ScrubError("--num-cpus sizes the private local cluster; an existing cluster (--address) has the CPUs "
                         "it was started with (`ray start --num-cpus`).")
    sweep = load_sweep(path)
    points = expand(sweep)
    if check_only:
        check_points(sweep, points, options, echo)
        return None
    outcome = run_sweep(sweep, points, options, echo)
    echo("")
    echo(ranking_table(outcome.record))
    echo(f"\nwrote {outcome.folder / 'sweep.json'} and {outcome.folder / 'sweep.html'}")
    return outcome


def check_points(sweep: SweepFile, points: list[Point], options: SweepOptions, echo) -> None:
    from scrub.app.sweep.worker import cached_model, forget_models

    try:
        for p in points:
            try:
                model, _ = cached_model(p.spec, options.device)
                prepared = prepare(p.spec, options.device, options.reference, model)
            except SpecError as exc:
                raise blame(sweep, p.values, p.id, exc.key, exc.detail) or exc from None
            echo(f"{p.id}: ok ({len(prepared.data)} data) -> {p.slug}/")
    finally:
        forget_models()
    echo(f"{len(points)} points checked; nothing was run.")


def ranking_table(record: dict) -> str:
    if not record.get("ranking"):
        return "no finished points to rank yet"
    pct = lambda e, k="value": "n/a" if (e or {}).get(k) is None else f"{e[k]:.1%}"  # noqa: E731
    rows = [[r["rank"], r["point"], f"{pct(r['loss_recovered'])} [{pct(r['loss_recovered'], 'low')}, "
             f"{pct(r['loss_recovered'], 'high')}]", f"{r['min_loss_recovered']:.0%}", f"{r['p_holm']:.3g}",
             "survives" if r["survives"] else "rejected", r["verdict"]] for r in record["ranking"]]
    counts = record["counts"]
    return (format_table(rows, ["rank", "point", "loss recovered [95% CI]", "threshold", "p (Holm)", "Holm",
                                "own verdict"])
            + f"\n\n{counts['done']} of {counts['points']} points finished; Holm's correction across the "
              f"{counts['done']} finished, family-wise level {record['alpha']}.")
