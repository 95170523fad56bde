"""One sweep point, computed wherever Ray (or `--serial`) runs it.

The point runs through the same code as `scrub run` (`runner.run_spec`), into a private temporary
folder whose files go back to the driver, which writes them: a cluster needs no shared output folder,
and one process writes the sweep's files.

A worker process keeps the last models it loaded. Ray reuses CPU workers between tasks, so points that
share a model load it once per worker; Ray gives each GPU task a fresh process (a reused one could be
handed a different GPU), so GPU points load their own.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from scrub.errors import ScrubError

MAX_MODELS = 2
_MODELS: "OrderedDict[tuple, Any]" = OrderedDict()  # (model entry, spec folder, device) -> loaded model


def run_point(task: dict) -> dict:
    """Run one point (`Point.task()`); returns plain data.

    Success: {"ok": True, "files": {relative path: bytes}, "status", "seconds", "model_reused", "pid", "host"}.
    Invalid input (a ScrubError: a bad site, data that do not fit, ...): {"ok": False, "invalid": True,
    "error", "key", "detail"}: retrying cannot help, so it comes back as data, never as an exception.
    Anything else raises, and Ray retries the point."""
    from scrub.app.cli.runner import run_spec
    from scrub.app.spec import SpecError
    from scrub.app.sweep.points import point_settings, read_point

    started = time.time()
    try:
        spec = read_point(task["text"], task["file"], task["lines"])
        device = task.get("device") or _assigned_gpu()
        model, reused = cached_model(spec, device)
        with tempfile.TemporaryDirectory(prefix="scrub-point-") as tmp:
            record, folder, _ = run_spec(spec, Path(tmp), point_settings(spec, task.get("reference"), device),
                                         model=model)
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    except ScrubError as exc:
        spec_error = isinstance(exc, SpecError)
        return {"ok": False, "invalid": True, "error": str(exc), "key": exc.key if spec_error else None,
                "detail": exc.detail if spec_error else str(exc), **_where()}
    return {"ok": True, "files": files, "status": record["verdict"]["status"], "seconds": time.time() - started,
            "model_reused": reused, **_where()}


def cached_model(spec, device: Optional[str]) -> tuple[Any, bool]:
    """The spec's model on `device`, from this process's cache when a recent point loaded it."""
    from scrub.app.spec.run_spec import load_model, spec_folder_on_path

    key = (json.dumps(spec.model, sort_keys=True), str(spec.folder), device)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key], True
    with spec_folder_on_path(spec.file):
        model = load_model(spec, device)
    _MODELS[key] = model
    while len(_MODELS) > MAX_MODELS:
        _MODELS.popitem(last=False)
    return model, False


def forget_models() -> None:
    _MODELS.clear()


def run_serially(tasks: Iterable[dict]) -> Iterator[tuple[str, dict]]:
    """`--serial`: the points one after another in this process (no Ray, no retries)."""
    try:
        for task in tasks:
            try:
                result = run_point(task)
            except Exception as exc:  # noqa: BLE001 - reported with the point, as Ray reports a failed task
                result = {"ok": False, "invalid": False,
                          "error": f"it raised {type(exc).__name__} (1 attempt: --serial does not retry):\n"
                                   f"{traceback.format_exc()}"}
            yield task["id"], result
    finally:
        forget_models()


def _assigned_gpu() -> Optional[str]:
    """'cuda' when Ray gave this task a GPU (it sets CUDA_VISIBLE_DEVICES to it), else None."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized() and ray.get_gpu_ids():
        return "cuda"
    return None


def _where() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}
