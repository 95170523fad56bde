"""Data functions and files for sweep tests (importable: they live on the tests' sys.path, which Ray
workers of a private cluster inherit through PYTHONPATH).

`logged_data` leaves a trace of every call (which spec asked, in which process) and can hold a call
until the test lets it go: that is how a test knows which worker runs which point, and kills it
mid-point from outside, as an out-of-memory killer or a preempted node would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from spec_helpers import tiny_data, tiny_spec_text, write_tiny_checkpoint

LOG = "SCRUB_TEST_SWEEP_LOG"    # a file: each call appends "<tag> <pid>"
HOLD = "SCRUB_TEST_SWEEP_HOLD"  # a folder: a call with tag T waits while <folder>/T exists


def logged_data(tag: str, n: int = 40):
    if os.environ.get(LOG):
        with open(os.environ[LOG], "a") as f:  # one short append: lines never interleave
            f.write(f"{tag} {os.getpid()}\n")
    hold = Path(os.environ[HOLD]) / tag if os.environ.get(HOLD) else None
    deadline = time.time() + 120
    while hold is not None and hold.exists() and time.time() < deadline:
        time.sleep(0.05)
    return tiny_data(n)


def failing_data(tag: str):
    logged_data(tag)
    raise RuntimeError("the data server is down")


def write_tiny_specs(folder: Path, specs: dict, seeds: str = "[0, 1]") -> None:
    """A tiny checkpoint and one spec per name: {name: (site, data)}; data is a spec `data:` value."""
    write_tiny_checkpoint(folder)
    for name, (site, data) in specs.items():
        (folder / f"{name}.yaml").write_text(tiny_spec_text(name, data, site, seeds))


def logged(tag: str) -> str:
    return f"{{function: sweep_helpers.logged_data, args: {{tag: {tag}}}}}"


def _lines(log: Path) -> list[str]:
    """The complete lines of the log (a line being appended right now is left out)."""
    text = log.read_text() if log.exists() else ""
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def calls(log: Path) -> list[str]:
    """The tags of every logged data call, in order."""
    return [line.split()[0] for line in _lines(log)]


def wait_for_call(log: Path, tag: str, process: subprocess.Popen, timeout: float = 180) -> int:
    """The pid of the first call with `tag` (the process running the sweep must still be alive)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in _lines(log):
            if line.split()[0] == tag:
                return int(line.split()[1])
        assert process.poll() is None, f"the sweep ended (rc {process.returncode}) before a {tag!r} point started"
        time.sleep(0.05)
    raise AssertionError(f"no {tag!r} point started within {timeout}s")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrub_command() -> str:
    return str(Path(sys.executable).parent / "scrub")
