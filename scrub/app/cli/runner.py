"""Run spec files to result folders, resumably.

Each spec gets its own folder `OUT/<slug of its name>/` (see `outputs.claim_folder`:
unique per spec file, found again on the next run) holding `spec.yaml` (a
copy), `partial/seed-<s>.pt` (per-datum values of each finished seed),
`result.json` and `report.html`. A run with the cancel-out report writes its
result and report to `with-cancel/` inside the folder, so the results of
`scrub run` and of `scrub run --cancel` / `scrub cancel` coexist; both share
the saved seeds, which do not depend on the cancel-out report. The seeds not
saved yet run as one stacked pass (shared reference data, plain values
computed once per distinct datum), and each is saved as soon as the pass ends;
a finished result is reused when rerun with the same spec text and settings,
and a rerun after a crash or Ctrl-C computes only the seeds with no saved file.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from scrub.errors import DataError
from scrub.files import load_tensors
from scrub.app.outputs import claim_folder, safe_child, slug, write_atomic  # noqa: F401 - used by main
from scrub.app.report.record import evaluation_record
from scrub.app.spec import RunSpec, prepare

from metrics.cancel import cancel_out_report
from metrics.evaluate import Evaluation, evaluate_many


RESULT_VERSION = 2  # bumped when a result's contents change (2: independent-draw check, cancel-out sets)


@dataclass
class Settings:
    seeds: tuple
    reference: Optional[int]
    device: Optional[str]
    cancel: bool

    def key(self, spec: RunSpec) -> str:
        text = json.dumps([spec.sha256, list(self.seeds), self.reference, self.cancel, RESULT_VERSION])
        return hashlib.sha256(text.encode()).hexdigest()

    def seed_key(self, spec: RunSpec) -> str:
        """What a saved seed depends on: not the cancel-out report, so runs with and without it share seeds."""
        return replace(self, cancel=False).key(spec)


def spec_folder(out_root: pathlib.Path, spec: RunSpec) -> pathlib.Path:
    """The spec's own results folder (unique per spec file; see outputs.claim_folder)."""
    owner = str(pathlib.Path(spec.file).resolve()) if not spec.file.startswith("<") else f"name:{spec.name}"
    return claim_folder(out_root, spec.name, owner)


def finished_record(folder: pathlib.Path, key: str) -> Optional[dict]:
    """The record in folder/result.json when it was computed under settings `key`, else None."""
    result_path = folder / "result.json"
    if result_path.exists():
        try:
            old = json.loads(result_path.read_text())
            if isinstance(old, dict) and old.get("settings_sha256") == key:
                return old
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a damaged result is recomputed
    return None


def run_spec(spec: RunSpec, out_root: pathlib.Path, settings: Settings,
             progress: Optional[Callable] = None, log: Callable[[str], None] = print,
             model=None) -> tuple[dict, pathlib.Path, bool]:
    """Run one spec (resuming); returns (record, folder of its result, was_already_done).

    `model`: the spec's model already loaded (see `prepare`)."""
    folder = spec_folder(out_root, spec)
    results = folder / "with-cancel" if settings.cancel else folder
    result_path = results / "result.json"
    key = settings.key(spec)
    old = finished_record(results, key)
    if old is not None:
        return old, results, True
    started = time.time()
    prepared = prepare(spec, settings.device, settings.reference, model)
    write_atomic(folder / "spec.yaml", spec.text.encode())
    ev = Evaluation.merge_seeds(_seeds(prepared, settings.seeds, folder / "partial", settings.seed_key(spec),
                                       progress))
    verdict = spec.rule.judge(ev)
    cancel = None
    if settings.cancel:  # on the first seed (the report runs many variants), scaled by the evaluation's random figure
        dist = spec.rule.distance_for(ev)
        random_distance = float(ev.random_comparisons[dist].mean()) if dist in ev.random_comparisons else None
        cancel = cancel_out_report(prepared.model, spec.hypothesis, prepared.data, spec.loss, seeds=settings.seeds[:1],
                                   reference=prepared.reference, batch_size=spec.batch_size,
                                   reference_seed=settings.seeds[0], distance=dist,
                                   random_distance=random_distance, settings=spec.cancel)
        if cancel.sets:  # a hypothesis whose left-out parts cancel is not explained: name them beside the verdict
            named = "; ".join(str(s) for s in cancel.sets)
            verdict = replace(verdict, flags=verdict.flags + (f"cancel-out sets left unexplained: {named}",))
    record = evaluation_record(
        ev, verdict, spec.rule, cancel=cancel, spec=spec.raw, spec_file=str(spec.file), spec_sha256=spec.sha256,
        model=dict(spec.model), data={**spec.data, "name": prepared.data.name, "n_pool": len(prepared.data)},
        seconds=time.time() - started)
    record["settings_sha256"] = key
    write_atomic(result_path, json.dumps(record, indent=1).encode())
    try:
        from scrub.app.report.html import write_report
        write_report(record, results)
    except ImportError:  # pragma: no cover - the report module ships with the package
        log("note: HTML report module unavailable; wrote result.json only")
    return record, results, False


def _seeds(prepared, seeds: tuple, folder: pathlib.Path, key: str, progress: Optional[Callable]) -> list:
    """Each seed's evaluation: loaded where saved under the same settings; the others computed in one
    stacked pass and saved one file per seed."""
    spec = prepared.spec
    path = {s: folder / f"seed-{s}.pt" for s in seeds}
    done = {s: ev for s in seeds if (ev := _saved(spec, path[s], key)) is not None}
    missing = tuple(s for s in seeds if s not in done)
    if missing:
        stacked = evaluate_many(prepared.model, [spec.hypothesis], prepared.data, spec.loss, seeds=missing,
                                reference=prepared.reference, metrics=spec.metrics, batch_size=spec.batch_size,
                                reference_seed=seeds[0])[0]
        parts = dict(zip(missing, stacked.split_seeds()))
        for seed in (progress(missing) if progress else missing):
            write_atomic(path[seed], _to_bytes({"settings_sha256": key, "state": parts[seed].state()}))
            done[seed] = parts[seed]
    return [done[s] for s in seeds]


def _saved(spec, path: pathlib.Path, key: str) -> Optional[Evaluation]:
    """A seed's evaluation saved under the same settings, or None."""
    if path.exists():
        try:
            blob = load_tensors(path, "saved seed")
        except DataError:
            blob = {}  # a damaged seed file (a crash mid-write on a filesystem without atomic rename) is recomputed
        if isinstance(blob, dict) and blob.get("settings_sha256") == key:
            return Evaluation.from_state(spec.hypothesis, blob["state"])
    return None


def _to_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
