"""Weights & Biases logging of result records ("scrub.result/1", "scrub.compare/1").

The only module of the project that imports wandb, and only inside functions:
wandb is an optional extra (`pip install 'scrub[wandb]'`) and a slow import,
so the engine, `metrics` and `hypotheses` must work without it. Everything is
logged from the plain record dict (scrub/app/report/record.py), the same source
the CLI's result.json and the HTML report use, so the three never disagree.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from scrub.errors import ScrubError
from scrub.app.report.record import COMPARE_SCHEMA, SCHEMA

PathLike = Union[str, Path]
BOUNDS = ("value", "low", "high", "seed_low", "seed_high")
CONFIG_EXTRAS = ("hypothesis", "seeds", "loss", "model", "data", "verdict_rule")


def log_record(record: dict, *, project: str = "scrub", run_name: Optional[str] = None,
               spec_file: Optional[PathLike] = None, report_html: Optional[PathLike] = None,
               mode: Optional[str] = None, dir: Optional[PathLike] = None, tags: Iterable[str] = (),
               group: Optional[str] = None) -> str:
    """Log one result record as a W&B run (job_type "scrub"); return the run's local directory.

    `group`: the W&B group of the run (a sweep puts all its points in one group named after it).

    Config: the full spec plus the resolved facts of the run. Where the spec
    already has a key of the same name (a spec's `model:` is how to load the
    model, the record's `model` what was loaded), the spec keeps it and the
    record's value goes under `<key>_resolved`. Summary: every metric with its
    intervals (`m`, `m_low`, `m_high`, `m_seed_low`, `m_seed_high`), the
    verdict, `survives` and `cancels` (the independent-draw flag) as 0/1, and
    the independent-draw check (`independent_<distance>`, `independent_excess`).
    Tables: `results`, `hypothesis_graph`, and `cancel_out` (components),
    `cancel_sets` and `cancel_pairs` when the record has a cancel-out report.
    Histograms of the per-datum losses and the verdict's distance. The spec
    file and the HTML report, when given, go up as artifacts ("spec",
    "report"); the report is also logged as `wandb.Html`. None values are
    skipped, never logged as NaN.

    wandb-core writes the run's files in a background process: the offline
    directory is complete once wandb shuts down (at interpreter exit, or
    after `wandb.teardown()`), which is when to `wandb sync` it.
    """
    _check_schema(record, SCHEMA, "log_ranking")
    files = _existing_files(spec_file=spec_file, report_html=report_html)
    wandb = _wandb()
    name = record.get("name") or "scrub"
    verdict = record.get("verdict") or {}
    config = _config(record.get("spec") or {}, {
        "hypothesis": name, "seeds": record.get("seeds"), "loss": record.get("loss"), "model": record.get("model"),
        "data": record.get("data"), "verdict_rule": verdict.get("rule")})

    summary: dict[str, Any] = {}
    for metric, est in (record.get("summary") or {}).items():
        summary.update(_estimate_keys(metric, est))
    for dist, value in (record.get("random_distances") or {}).items():
        summary[f"random_{dist}"] = value
    status = verdict.get("status")
    summary.update({"verdict": status, "verdict_text": verdict.get("text"), "verdict_distance": verdict.get("distance"),
                    "survives": None if status is None else int(status == "survives"),
                    "cancels": None if verdict.get("cancels") is None else int(bool(verdict.get("cancels"))),
                    "seconds": (record.get("timing") or {}).get("seconds")})
    check = record.get("independent_check")
    if check:
        summary.update(_estimate_keys(f"independent_{check.get('distance')}", check.get("value")))
        summary.update(_estimate_keys("independent_excess", check.get("excess")))
        summary.update({"independent_margin": check.get("margin"), "independent_edges": check.get("edges")})

    with _init(wandb, project, run_name or name, config, mode, dir, tags, group) as run:
        media: dict[str, Any] = {"results": _table(wandb, ["metric", *BOUNDS], [
            [m, *(_num((e or {}).get(b)) for b in BOUNDS)] for m, e in (record.get("summary") or {}).items()])}
        graph = record.get("hypothesis_graph")
        if graph:
            media["hypothesis_graph"] = _table(wandb, ["node", "parent", "depth", "paths", "sampler", "other_inputs",
                                                       "leaf"], [
                [n.get("name"), n.get("parent"), n.get("depth"), ", ".join(n.get("paths") or []), n.get("sampler"),
                 n.get("other_inputs"), n.get("leaf")] for n in graph.get("nodes", [])])
        cancel = record.get("cancel")
        if cancel is not None:
            media["cancel_out"] = _table(wandb, ["component", "node", *_bound_columns("scrubbed_alone"),
                                                 *_bound_columns("restored_alone")], [
                [c.get("component"), c.get("node"), *_bounds(c.get("scrubbed_alone")),
                 *_bounds(c.get("restored_alone"))] for c in cancel.get("components", [])])
            media["cancel_sets"] = _table(wandb, ["set", "components", "size", *_bound_columns("joint"),
                                                  *_bound_columns("cancelled"), *_bound_columns("ratio")], [
                [k, " + ".join(cs.get("components") or []), len(cs.get("components") or []),
                 *_bounds(cs.get("joint")), *_bounds(cs.get("cancelled")), *_bounds(cs.get("ratio"))]
                for k, cs in enumerate(cancel.get("sets", []), 1)])
            effects = ("effect_a", "effect_b", "joint", "cancelled")
            media["cancel_pairs"] = _table(wandb, ["a", "b", *(col for e in effects for col in _bound_columns(e))], [
                [p.get("a"), p.get("b"), *(v for e in effects for v in _bounds(p.get(e)))]
                for p in cancel.get("pairs", [])])
            summary.update(_estimate_keys("cancel_joint", cancel.get("joint")))
            search = cancel.get("search") or {}
            summary.update({"cancel_tested_pairs": cancel.get("tested_pairs"),
                            "cancel_random_distance": cancel.get("random_distance"),
                            "cancel_n_sets": len(cancel.get("sets", [])), "cancel_variants": search.get("variants"),
                            "cancel_large": search.get("large"), "cancel_components": search.get("components")})
        media.update(_histograms(wandb, record.get("per_datum") or {}, verdict.get("distance")))
        if "report_html" in files:
            media["report"] = wandb.Html(files["report_html"], inject=False)
        run.log(media)
        run.summary.update(_drop_none(summary))
        if "spec_file" in files:
            _log_files(wandb, run, f"{name}-spec", "spec", [files["spec_file"]])
        if "report_html" in files:
            _log_files(wandb, run, f"{name}-report", "report", [files["report_html"]])
        return _run_dir(run)


def log_ranking(record: dict, *, project: str = "scrub", run_name: Optional[str] = None,
                spec_file: Union[PathLike, Sequence[PathLike], None] = None, report_html: Optional[PathLike] = None,
                mode: Optional[str] = None, dir: Optional[PathLike] = None, tags: Iterable[str] = ()) -> str:
    """Log a ranked comparison as one W&B run; return the run's local directory.

    A `ranking` table (one row per hypothesis, best first) and per-hypothesis
    summary entries `<name>/loss_recovered[_low|_high|...]`, `<name>/p_holm`,
    `<name>/rank`, `<name>/survives`. `spec_file` may be one path or several
    (one artifact of type "spec" holding them all).
    """
    _check_schema(record, COMPARE_SCHEMA, "log_record")
    specs = [] if spec_file is None else [spec_file] if isinstance(spec_file, (str, Path)) else list(spec_file)
    files = _existing_files(report_html=report_html, **{f"spec_file[{i}]": p for i, p in enumerate(specs)})
    wandb = _wandb()
    rows = record.get("rows") or []
    config = {"alpha": record.get("alpha"), "distance": record.get("distance"), "rule": record.get("rule"),
              "spec_files": record.get("spec_files"), "hypotheses": [r.get("name") for r in rows]}
    dist = record.get("distance") or "distance"
    summary: dict[str, Any] = {"n_hypotheses": len(rows), "n_survive": sum(bool(r.get("survives")) for r in rows)}
    table_rows = []
    for r in rows:
        name = r.get("name")
        summary.update({f"{name}/rank": r.get("rank"), f"{name}/p_value": r.get("p_value"),
                        f"{name}/p_holm": r.get("p_holm"), f"{name}/survives": int(bool(r.get("survives"))),
                        f"{name}/cancels": int(bool(r.get("cancels"))),
                        f"{name}/verdict": r.get("verdict")})
        summary.update(_estimate_keys(f"{name}/loss_recovered", r.get("loss_recovered")))
        summary.update(_estimate_keys(f"{name}/{dist}", r.get("distance")))
        table_rows.append([r.get("rank"), name, bool(r.get("survives")), _num(r.get("p_value")),
                           _num(r.get("p_holm")), *_bounds(r.get("loss_recovered")), *_bounds(r.get("distance")),
                           r.get("verdict")])
    default_name = f"compare {len(rows)} hypotheses"
    with _init(wandb, project, run_name or default_name, _drop_none(config), mode, dir, tags) as run:
        media: dict[str, Any] = {"ranking": _table(wandb, ["rank", "hypothesis", "survives", "p_value", "p_holm",
                                                           *_bound_columns("loss_recovered"), *_bound_columns(dist),
                                                           "verdict"], table_rows)}
        if "report_html" in files:
            media["report"] = wandb.Html(files["report_html"], inject=False)
        run.log(media)
        run.summary.update(_drop_none(summary))
        spec_paths = [p for k, p in files.items() if k.startswith("spec_file")]
        if spec_paths:
            _log_files(wandb, run, "compare-spec", "spec", spec_paths)
        if "report_html" in files:
            _log_files(wandb, run, "compare-report", "report", [files["report_html"]])
        return _run_dir(run)


def to_wandb(**options):
    """A sink for `evaluate(..., log_to=...)`: each evaluation, judged by the default rule, becomes one
    W&B run (options as for `log_record`, e.g. project="induction", mode="offline")."""
    def sink(evaluations, data) -> None:
        from metrics.verdicts import VerdictRule
        from scrub.app.report.record import evaluation_record

        rule = VerdictRule()
        for ev in evaluations:
            record = evaluation_record(ev, rule.judge(ev), rule, data={"name": data.name, "n_pool": len(data)})
            log_record(record, **{"run_name": ev.name, **options})
    return sink


def check_ready(project: str = "scrub", mode: Optional[str] = None) -> None:
    """Raise a ScrubError now, before any computation, if logging to W&B would fail at the end: wandb
    missing, or an online run without credentials. Offline and disabled modes need no login."""
    wandb = _wandb()
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    if mode in ("offline", "disabled", "dryrun"):
        return
    try:
        logged_in = wandb.login(prompt=False, verify=False)
    except Exception as e:  # noqa: BLE001 - wandb raises many kinds for bad settings
        raise ScrubError(f"W&B is not ready (project {project!r}): {e}") from None
    if not logged_in:
        raise ScrubError(f"W&B logging (project {project!r}) needs a login, and none is set up. Log in with "
                         "`wandb login` (or set WANDB_API_KEY), or set WANDB_MODE=offline to write runs to disk "
                         "and `wandb sync` them later. Nothing was computed.")


def _wandb():
    """Import wandb on first use, with the fix in the error when it is missing."""
    try:
        import wandb
    except ImportError as e:
        raise ScrubError("W&B logging needs the wandb package, which is not installed: "
                         "pip install 'scrub[wandb]'") from e
    return wandb


def _init(wandb, project: str, name: str, config: dict, mode: Optional[str], dir: Optional[PathLike],
          tags: Iterable[str], group: Optional[str] = None):
    """Start a run of our own: `create_new` leaves any run the caller has open untouched."""
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    if dir is not None:
        Path(dir).mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(project=project, name=name, job_type="scrub", config=config, mode=mode,
                          dir=None if dir is None else str(dir), tags=list(tags) or None, group=group,
                          reinit="create_new")
    except Exception as e:
        raise ScrubError(f"Could not start a W&B run (project {project!r}, mode {mode!r}): {e}. Log in with "
                         "`wandb login`, or set WANDB_MODE=offline to write the run to disk and `wandb sync` it "
                         "later.") from e


def _run_dir(run) -> str:
    """The run's local directory (offline-run-*/run-*), parent of `run.dir` (its files/)."""
    return str(Path(run.dir).parent)


def _check_schema(record: Any, schema: str, other: str) -> None:
    if not isinstance(record, dict):
        raise ScrubError(f"Expected a result record (a dict), got {type(record).__name__}.")
    got = record.get("schema")
    if got is not None and got != schema:
        raise ScrubError(f"This record has schema {got!r}, not {schema!r}; log it with {other}().")


def _existing_files(**paths: Optional[PathLike]) -> dict[str, Path]:
    """Check the files before a run starts, so a typo does not leave a half-logged run."""
    out = {}
    for what, p in paths.items():
        if p is None:
            continue
        if not Path(p).is_file():
            raise ScrubError(f"{what}={str(p)!r}: no such file, so it cannot be logged to W&B.")
        out[what] = Path(p)
    return out


def _config(spec: dict, extras: dict) -> dict:
    config = dict(spec)
    for key, value in extras.items():
        if value is None:
            continue
        if key in config and config[key] != value:
            key = f"{key}_resolved"
        config[key] = value
    return config


def _num(x: Any) -> Optional[float]:
    if x is None or isinstance(x, bool):
        return x
    x = float(x)
    return x if math.isfinite(x) else None


def _bounds(est: Optional[dict]) -> list:
    return [_num((est or {}).get(b)) for b in BOUNDS]


def _bound_columns(prefix: str) -> list[str]:
    return [prefix if b == "value" else f"{prefix}_{b}" for b in BOUNDS]


def _estimate_keys(prefix: str, est: Optional[dict]) -> dict:
    return dict(zip(_bound_columns(prefix), _bounds(est)))


def _drop_none(d: dict) -> dict:
    """W&B would show None as NaN or null; leaving the key out says 'not measured' plainly."""
    return {k: v for k, v in d.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


def _table(wandb, columns: list[str], rows: list[list]):
    return wandb.Table(columns=columns, data=rows)


def _histograms(wandb, per_datum: dict, distance: Optional[str]) -> dict:
    """The report's plots: per-datum model, scrubbed and random loss, and the verdict's distance."""
    series = {"per_datum/model_loss": per_datum.get("model_loss"),
              "per_datum/scrubbed_loss": per_datum.get("scrub_loss"),
              "per_datum/random_loss": per_datum.get("random_loss")}
    if distance:
        series[f"per_datum/{distance}"] = (per_datum.get("distances") or {}).get(distance)
    out = {}
    for key, values in series.items():
        finite = [v for v in (_num(x) for x in values or []) if v is not None]
        if finite:
            out[key] = wandb.Histogram(finite)
    return out


def _log_files(wandb, run, name: str, kind: str, paths: list[Path]) -> None:
    artifact = wandb.Artifact(_artifact_name(name), type=kind)
    for p in paths:
        artifact.add_file(str(p), name=p.name)
    run.log_artifact(artifact)


def _artifact_name(name: str) -> str:
    """Artifact names allow only letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "scrub"
