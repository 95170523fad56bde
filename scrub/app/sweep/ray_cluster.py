"""Ray for `scrub sweep`: a private local cluster or an existing one; one task per point.

Ray is imported here only, and only when a sweep runs on it (`pip install 'scrub[ray]'`). What this
module takes care of (each was measured; docs/sweeps.md):

* token authentication: a private cluster listens on every interface, so it gets a fresh random token
  (set before `import ray`, which reads it); for an existing cluster, token mode is switched on when a
  token is at hand (Ray's own files or variables).
* a short temporary folder: Ray's socket paths under it must stay within 107 bytes.
* `--address` to nothing: `ray.init` would retry for minutes, so the port is tried first.
* one GPU per task only when the cluster has GPUs (a GPU task on a cluster without one waits forever).
* a task that crashes (its worker died, an unexpected exception) is retried `retries` times, then
  reported; invalid input comes back as data (worker.py) and is never retried.
* Ctrl-C, or any error in the driver: the unfinished tasks are cancelled, so nothing keeps running.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional

from scrub.errors import ScrubError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
OBJECT_STORE_BYTES = 200 * 2**20  # results are a few small files per point


def import_ray(address: Optional[str]):
    if "ray" not in sys.modules and "RAY_AUTH_MODE" not in os.environ:
        if address is None:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # the private cluster's workers inherit it
        elif _token_at_hand():
            os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise ScrubError("scrub sweep runs its points on Ray, which is not installed: pip install 'scrub[ray]' "
                         "(or run the points one after another in this process with --serial).") from None
    return ray


def _token_at_hand() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").exists())


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast where `ray.init(address=HOST:PORT)` would retry for minutes."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ScrubError(f"--address {address!r}: give HOST:PORT of the cluster's head (the address `ray start "
                         "--head` prints, port 6379 by default), or 'auto' on a node of the cluster.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ScrubError(f"no Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
                         "`ray start --head` (it prints the address), or leave out --address to run on this "
                         "machine.") from None


@contextlib.contextmanager
def ray_cluster(address: Optional[str] = None, num_cpus: Optional[int] = None):
    """Ray, connected: to `address`, else to a private local cluster (gone when the block ends). A Ray
    session this process already opened is used as it is, and left open."""
    ray = import_ray(address)
    if ray.is_initialized():
        yield ray
        return
    temp = None
    if address is None:
        temp = tempfile.mkdtemp(prefix="ray", dir="/tmp" if os.path.isdir("/tmp") else None)
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                 object_store_memory=OBJECT_STORE_BYTES, _temp_dir=temp)
    else:
        check_address(address)
        try:
            ray.init(address=address, logging_level="WARNING")
        except ConnectionError as exc:  # 'auto' with no cluster on this machine
            raise ScrubError(f"--address {address}: {str(exc).rstrip('.')}. Start a cluster with `ray start "
                             "--head`, or leave out --address to run on this machine.") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def describe(ray, address: Optional[str]) -> str:
    res = ray.cluster_resources()
    where = f"the Ray cluster at {address}" if address else "a private local Ray cluster"
    return f"{where} ({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs)"


def run_on_ray(ray, tasks: Iterable[dict], retries: int, device: Optional[str] = None) -> Iterator[tuple[str, dict]]:
    """(point id, result) as each point finishes, in the order they finish. Each task asks for a GPU when
    the cluster has one, unless `device` names another kind of device."""
    from scrub.app.sweep.worker import run_point

    wants_gpu = device is None or device.startswith("cuda")
    gpus = 1 if wants_gpu and ray.cluster_resources().get("GPU", 0) >= 1 else 0
    # declared with its GPU (not added by .options): Ray then runs each GPU task in a fresh process
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=retries, retry_exceptions=True)(run_point)
    refs = {remote.remote(task): task["id"] for task in tasks}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # retries used up
                result = {"ok": False, "invalid": False, "error": _failure(ray, exc, retries)}
            yield refs[done[0]], result
    finally:  # interrupted, or the driver failed: nothing of this sweep keeps running on the cluster
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def _failure(ray, exc: Exception, retries: int) -> str:
    died = tuple(getattr(ray.exceptions, name) for name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
                 if hasattr(ray.exceptions, name))
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the task's own exception
    what = "its worker process died" if isinstance(exc, died) else f"it raised {type(cause or exc).__name__}"
    return f"{what} ({attempts(1 + retries)}):\n{ANSI.sub('', str(exc))}"


def attempts(n: int) -> str:
    return f"{n} attempt" + ("s" if n != 1 else "")
