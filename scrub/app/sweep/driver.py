"""Run a sweep: skip the finished points, run the rest on Ray (or serially), write each point's files
as it arrives, log it to W&B, and merge everything into sweep.json and sweep.html.

The output folder is the state. A point is done when its folder holds a result.json of the point's
spec and settings (written last, after the point's other files), so a rerun of an interrupted or
partly failed sweep computes only what is missing, and W&B runs that were not logged yet are logged
then (a point's wandb.json says it was).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pathlib
from dataclasses import dataclass, field
from typing import Callable, Optional

from scrub.app.cli.runner import safe_child, write_atomic
from scrub.app.sweep.merge import ERROR_FILE, finished, sweep_record
from scrub.app.sweep.points import Point, blame
from scrub.app.sweep.sweep_file import SweepFile
from scrub.errors import ScrubError

WANDB_MARK = "wandb.json"


@dataclass
class SweepOptions:
    out: pathlib.Path = pathlib.Path("scrub-out")
    address: Optional[str] = None     # an existing Ray cluster; None: a private local one
    num_cpus: Optional[int] = None    # CPUs of the private cluster (None: all)
    retries: int = 2                  # attempts after the first, for a point whose task crashed
    device: Optional[str] = None
    reference: Optional[int] = None
    alpha: Optional[float] = None     # None: the sweep file's
    wandb_project: Optional[str] = None  # None: no W&B logging
    serial: bool = False              # in this process, no Ray


@dataclass
class SweepOutcome:
    folder: pathlib.Path
    record: dict
    computed: list = field(default_factory=list)   # point ids computed by this run
    failed: dict = field(default_factory=dict)     # point id -> (invalid input?, message)
    wandb_error: Optional[str] = None

    @property
    def all_invalid(self) -> bool:
        return bool(self.failed) and all(invalid for invalid, _ in self.failed.values())


def run_sweep(sweep: SweepFile, points: list[Point], options: SweepOptions,
              echo: Callable[[str], None] = print) -> SweepOutcome:
    root = safe_child(options.out, sweep.name)
    todo = [p for p in points if finished(p, root / p.slug, options.reference) is None]
    echo(f"sweep {sweep.name!r}: {len(points)} point{'s' if len(points) != 1 else ''}, {len(points) - len(todo)} "
         f"already done, {len(todo)} to run -> {root}")
    if options.wandb_project and importlib.util.find_spec("wandb") is None:
        raise ScrubError("--wandb needs the wandb package, which is not installed: pip install 'scrub[wandb]'.")
    by_id = {p.id: p for p in todo}
    # Ray starts (or is found missing, or not answering) before anything is written
    with _executor(options, echo) if todo else contextlib.nullcontext() as execute:
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(root / "sweep.yaml", sweep.text.encode())
        outcome = SweepOutcome(root, {})
        logger = _WandbLogger(sweep.name, options.wandb_project, echo)
        try:
            logger.catch_up([p for p in points if p.id not in by_id], root)
            if todo:
                tasks = [p.task(options.reference, options.device) for p in _grouped_by_model(todo)]
                with contextlib.closing(execute(tasks)) as results:
                    for n, (point_id, result) in enumerate(results, 1):
                        point = by_id[point_id]
                        _arrived(sweep, point, root / point.slug, result, outcome, f"[{n}/{len(todo)}]", echo)
                        if result["ok"]:
                            logger.log(point, root / point.slug)
        finally:
            outcome.record = _merge(sweep, points, root, options, echo)
            outcome.wandb_error = logger.error
    return outcome


@contextlib.contextmanager
def _executor(options: SweepOptions, echo):
    """A function from tasks to (point id, result) as they finish."""
    if options.serial:
        from scrub.app.sweep.worker import run_serially
        echo("running the points one after another in this process (--serial)")
        yield run_serially
        return
    from scrub.app.sweep.ray_cluster import describe, ray_cluster, run_on_ray

    with ray_cluster(options.address, options.num_cpus) as ray:
        echo(f"on {describe(ray, options.address)}")
        yield lambda tasks: run_on_ray(ray, tasks, options.retries, options.device)


def _grouped_by_model(points: list[Point]) -> list[Point]:
    """Points that share a model one after another: a worker that ran one is likely to get the next."""
    order: dict = {}
    for p in points:
        order.setdefault(json.dumps(p.spec.model, sort_keys=True) + str(p.spec.folder), len(order))
    return sorted(points, key=lambda p: order[json.dumps(p.spec.model, sort_keys=True) + str(p.spec.folder)])


def _arrived(sweep: SweepFile, point: Point, folder: pathlib.Path, result: dict, outcome: SweepOutcome,
             count: str, echo) -> None:
    """Write a finished point's files (result.json last: it marks the point done), or its error."""
    if result["ok"]:
        files = result["files"]
        for rel in sorted(files, key=lambda r: r == "result.json"):
            target = (folder / rel).resolve()
            if folder.resolve() not in target.parents:
                raise RuntimeError(f"a worker returned the file {rel!r}, outside the point's folder")
            write_atomic(target, files[rel])
        (folder / ERROR_FILE).unlink(missing_ok=True)
        (folder / WANDB_MARK).unlink(missing_ok=True)  # it named the run of an earlier result
        outcome.computed.append(point.id)
        reused = ", model reused" if result.get("model_reused") else ""
        echo(f"{count} {point.id}: {result['status']} ({result['seconds']:.0f}s{reused}) -> {folder / 'result.json'}")
        return
    invalid = bool(result.get("invalid"))
    located = blame(sweep, point.values, point.id, result.get("key"), result.get("detail", "")) if invalid else None
    message = str(located) if located else result["error"]
    write_atomic(folder / ERROR_FILE, (message.rstrip() + "\n").encode())
    outcome.failed[point.id] = (invalid, message)
    lines = message.strip().splitlines() or ["failed"]
    brief = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # what happened ... the error itself
    echo(f"{count} {point.id}: FAILED{' (invalid input)' if invalid else ''}: {brief} (-> {folder / ERROR_FILE})")


def _merge(sweep: SweepFile, points: list[Point], root: pathlib.Path, options: SweepOptions, echo) -> dict:
    """sweep.json and sweep.html from what the folder holds (also after a failure or Ctrl-C)."""
    from scrub.app.sweep.html import render_sweep_html

    try:
        record = sweep_record(sweep, points, root, options.alpha or sweep.alpha, options.reference)
        write_atomic(root / "sweep.json", json.dumps(record, indent=1).encode())
        write_atomic(root / "sweep.html", render_sweep_html(record).encode())
        return record
    except Exception as exc:  # noqa: BLE001 - never hide the error that stopped the sweep behind this one
        echo(f"warning: could not write sweep.json ({type(exc).__name__}: {exc}); the points' results are in {root}")
        return {}


class _WandbLogger:
    """One W&B run per point, all in the group named after the sweep; logged from this process as points
    arrive. A failure stops W&B logging for the rest of the sweep (the results are on disk, and a rerun
    logs the points still missing)."""

    def __init__(self, group: str, project: Optional[str], echo):
        self.group, self.project, self.echo, self.error = group, project, echo, None

    def catch_up(self, points: list[Point], root: pathlib.Path) -> None:
        for p in points:
            self.log(p, root / p.slug, only_if_missing=True)

    def log(self, point: Point, folder: pathlib.Path, only_if_missing: bool = False) -> None:
        if not self.project or self.error:
            return
        mark = folder / WANDB_MARK
        if only_if_missing and mark.exists():
            try:
                if json.loads(mark.read_text()).get("project") == self.project:
                    return
            except json.JSONDecodeError:
                pass
        from scrub.app.report.wandb_log import log_record

        try:
            run_dir = log_record(json.loads((folder / "result.json").read_text()), project=self.project,
                                 run_name=point.id, group=self.group, spec_file=folder / "spec.yaml",
                                 report_html=folder / "report.html")
        except ScrubError as exc:
            self.error = f"W&B logging stopped at point {point.id!r}: {exc}"
            self.echo(f"warning: {self.error}")
            return
        write_atomic(mark, json.dumps({"project": self.project, "group": self.group, "run_dir": run_dir}).encode())
        self.echo(f"  logged to W&B (group {self.group!r}): {run_dir}")
