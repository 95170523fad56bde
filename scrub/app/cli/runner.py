"""Run spec files to result folders, resumably.

Each spec gets `OUT/<slug of its name>/` holding `spec.yaml` (a copy),
`partial/seed-<s>.pt` (per-datum values of each finished seed), `result.json`
and `report.html`. The seeds not saved yet run as one stacked pass (shared
reference data, plain values computed once per distinct datum), and each is
saved as soon as the pass ends; a finished spec is skipped when rerun with the
same spec text and settings, and a rerun after a crash or Ctrl-C computes only
the seeds with no saved file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from scrub.errors import ScrubError
from scrub.app.report.record import evaluation_record
from scrub.app.spec import RunSpec, prepare

from metrics.cancel import cancel_out_report
from metrics.evaluate import Evaluation, evaluate_many


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "spec"


def safe_child(root: pathlib.Path, name: str) -> pathlib.Path:
    """root/name, refusing anything that would resolve outside root."""
    root = root.resolve()
    child = (root / slug(name)).resolve()
    if root not in child.parents:
        raise ScrubError(f"output name {name!r} would leave the output folder {root}.")
    return child


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class Settings:
    seeds: tuple
    reference: Optional[int]
    device: Optional[str]
    cancel: bool

    def key(self, spec: RunSpec) -> str:
        text = json.dumps([spec.sha256, list(self.seeds), self.reference, self.cancel])
        return hashlib.sha256(text.encode()).hexdigest()


def run_spec(spec: RunSpec, out_root: pathlib.Path, settings: Settings,
             progress: Optional[Callable] = None, log: Callable[[str], None] = print) -> tuple[dict, pathlib.Path, bool]:
    """Run one spec (resuming); returns (record, folder, was_already_done)."""
    folder = safe_child(out_root, spec.name)
    result_path = folder / "result.json"
    key = settings.key(spec)
    if result_path.exists():
        try:
            old = json.loads(result_path.read_text())
            if old.get("settings_sha256") == key:
                return old, folder, True
        except json.JSONDecodeError:
            pass  # a damaged result is recomputed
    started = time.time()
    prepared = prepare(spec, settings.device, settings.reference)
    write_atomic(folder / "spec.yaml", spec.text.encode())
    ev = Evaluation.merge_seeds(_seeds(prepared, settings.seeds, folder / "partial", key, progress))
    verdict = spec.rule.judge(ev)
    cancel = None
    if settings.cancel:
        cancel = cancel_out_report(prepared.model, spec.hypothesis, prepared.data, spec.loss, seeds=settings.seeds[:1],
                                   reference=prepared.reference, batch_size=spec.batch_size,
                                   reference_seed=settings.seeds[0])
        if cancel.pairs:  # a survivor whose left-out parts cancel is not explained: say so beside the verdict
            pair = cancel.pairs[0]
            verdict = replace(verdict, flags=verdict.flags + (f"cancel-out pair left unexplained: {pair.a} + {pair.b}",))
    record = evaluation_record(
        ev, verdict, spec.rule, cancel=cancel, spec=spec.raw, spec_file=str(spec.file), spec_sha256=spec.sha256,
        model=dict(spec.model), data={**spec.data, "name": prepared.data.name, "n_pool": len(prepared.data)},
        seconds=time.time() - started)
    record["settings_sha256"] = key
    write_atomic(result_path, json.dumps(record, indent=1).encode())
    try:
        from scrub.app.report.html import write_report
        write_report(record, folder)
    except ImportError:  # pragma: no cover - the report module ships with the package
        log("note: HTML report module unavailable; wrote result.json only")
    return record, folder, False


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
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("settings_sha256") == key:
            return Evaluation.from_state(spec.hypothesis, blob["state"])
    return None


def _to_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
