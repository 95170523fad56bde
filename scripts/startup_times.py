"""Start-up cost of `scrub` commands: CPU seconds (user + system, best of N), which a loaded machine inflates
less than wall time.

    python scripts/startup_times.py .venv/bin/scrub [/path/to/other/scrub ...] [--repeat 5]

Prints one row per command and one column per executable (e.g. this checkout's and main's, for before and
after).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cpu_seconds(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        before = os.times()
        subprocess.run(command, capture_output=True, cwd=ROOT)
        after = os.times()
        best = min(best, (after.children_user - before.children_user) + (after.children_system - before.children_system))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("executables", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bad = pathlib.Path(tmp) / "bad.yaml"
        bad.write_text("model: induction\nhypothesis: [\n")
        commands = {"scrub --help": ["--help"], "scrub validate (YAML error)": ["validate", str(bad)],
                    "scrub sites induction": ["sites", "induction"]}
        print("| command | " + " | ".join(args.executables) + " |")
        print("| --- |" + " --- |" * len(args.executables))
        for label, rest in commands.items():
            times = [cpu_seconds([exe, *rest], args.repeat) for exe in args.executables]
            print(f"| `{label}` | " + " | ".join(f"{t:.2f} s" for t in times) + " |")


if __name__ == "__main__":
    main()
