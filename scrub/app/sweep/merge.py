"""The merged results of a sweep: `sweep.json` (schema "scrub.sweep/1"), the data of `sweep.html`.

Every finished point is one test in one family: its one-sided bootstrap p-value for "loss recovered
above the point's own threshold" (`metrics.compare.rank`, from the per-datum values the point saved)
is Holm-adjusted across the whole sweep. Built from the output folder alone, so a rerun that finds
every point done writes the same ranking.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import torch

from scrub.app.cli.runner import finished_record
from scrub.app.report.record import estimate_dict
from scrub.app.sweep.points import Point, point_settings
from scrub.app.sweep.sweep_file import SweepFile

from metrics.compare import rank
from metrics.evaluate import Evaluation

SCHEMA = "scrub.sweep/1"
ERROR_FILE = "error.txt"


def finished(point: Point, folder: pathlib.Path, reference: Optional[int]) -> Optional[dict]:
    """The point's record when its folder holds a result of the point's spec and settings, with the
    saved values of every seed (the ranking reads them), else None."""
    record = finished_record(folder, point_settings(point.spec, reference).key(point.spec))
    if record is None or not all((folder / "partial" / f"seed-{s}.pt").is_file() for s in point.spec.seeds):
        return None
    return record


def load_evaluation(point: Point, folder: pathlib.Path) -> Evaluation:
    parts = [Evaluation.from_state(point.spec.hypothesis, torch.load(folder / "partial" / f"seed-{s}.pt",
                                                                     map_location="cpu", weights_only=True)["state"])
             for s in point.spec.seeds]
    return Evaluation.merge_seeds(parts)


def sweep_record(sweep: SweepFile, points: list[Point], root: pathlib.Path, alpha: float,
                 reference: Optional[int] = None) -> dict:
    records = {p.id: finished(p, root / p.slug, reference) for p in points}
    done = [p for p in points if records[p.id] is not None]
    by_id = {p.id: p for p in points}
    ranking = rank([load_evaluation(p, root / p.slug) for p in done], [p.spec.rule for p in done], alpha) \
        if done else None
    rows = []
    for row in ranking.rows if ranking else []:
        p = by_id[row.evaluation.name]
        verdict = records[p.id]["verdict"]
        rows.append({"rank": row.rank, "point": p.id, "folder": p.slug, "spec_file": p.spec_file,
                     "axes": p.axes(sweep), "survives": row.survives, "p_value": row.p_value, "p_holm": row.p_holm,
                     "min_loss_recovered": row.rule.min_loss_recovered,
                     "loss_recovered": estimate_dict(row.verdict.loss_recovered),
                     "distance_name": verdict["distance"],
                     "distance": None if row.verdict.distance is None else estimate_dict(row.verdict.distance),
                     "verdict": verdict["status"], "verdict_text": verdict["text"]})
    listed = []
    for p in points:
        error_file = root / p.slug / ERROR_FILE
        status = "done" if records[p.id] is not None else "failed" if error_file.is_file() else "pending"
        listed.append({"point": p.id, "folder": p.slug, "spec_file": p.spec_file, "axes": p.axes(sweep),
                       "status": status, "verdict": records[p.id]["verdict"]["status"] if status == "done" else None,
                       "error": error_file.read_text(errors="replace") if status == "failed" else None})
    counts = {s: sum(x["status"] == s for x in listed) for s in ("done", "failed", "pending")}
    return {"schema": SCHEMA, "name": sweep.name, "description": sweep.doc.data.get("description"),
            "sweep_file": sweep.file, "sweep_sha256": sweep.sha256, "alpha": alpha,
            "axes": [axis.name for axis in sweep.axes], "counts": {"points": len(points), **counts},
            "ranking": rows, "points": listed}
