"""A sweep on a private local Ray cluster against the same points run one after another in this process
(`scrub sweep --serial`, the baseline), and a rerun that finds every point done.

    python scripts/bench_sweep.py [--sweep SWEEP.yaml] [--num-cpus N] [--reference N]

Default sweep: the 7 induction specs x seeds 0 and 1 (14 points), 200 reference data each. Every run goes
through `scrub.app.sweep.run_sweep` in this process, into a fresh output folder; wall times include
starting and stopping Ray. Prints a markdown table (docs/sweeps.md quotes it).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

from scrub.app.sweep import SweepOptions, expand, load_sweep, run_sweep

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT = "name: bench\nspecs: [{root}/hypotheses/cases/induction/specs/*.yaml]\naxes:\n  seed: [0, 1]\n"


def timed(sweep, points, options) -> float:
    start = time.perf_counter()
    outcome = run_sweep(sweep, points, options, echo=lambda line: None)
    assert not outcome.failed, outcome.failed
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=pathlib.Path)
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--reference", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.sweep
        if path is None:
            path = pathlib.Path(tmp) / "bench.yaml"
            path.write_text(DEFAULT.format(root=ROOT))
        sweep = load_sweep(path)
        points = expand(sweep)
        serial = timed(sweep, points, SweepOptions(pathlib.Path(tmp) / "serial", reference=args.reference,
                                                   serial=True))
        ray = timed(sweep, points, SweepOptions(pathlib.Path(tmp) / "ray", reference=args.reference,
                                                num_cpus=args.num_cpus))
        rerun = timed(sweep, points, SweepOptions(pathlib.Path(tmp) / "ray", reference=args.reference,
                                                  num_cpus=args.num_cpus))
    print(f"{len(points)} points, {args.reference} reference data each\n")
    print("| run | wall time | vs --serial |\n| --- | --- | --- |")
    print(f"| `--serial` (one process, the baseline) | {serial:.1f} s | 1.00 |")
    print(f"| private local Ray cluster ({args.num_cpus or 'all'} CPUs) | {ray:.1f} s | {serial / ray:.2f}x |")
    print(f"| rerun, every point done (Ray not started) | {rerun:.1f} s | |")


if __name__ == "__main__":
    main()
