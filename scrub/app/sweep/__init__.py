"""Sweeps: spec files crossed with axes of settings, one task per point on Ray (docs/sweeps.md).

`load_sweep` reads a sweep file, `expand` turns it into points (each a spec, read and checked as one),
`run_sweep` runs them and merges the results. Ray is imported only when a sweep runs on it.
"""

from scrub.app.sweep.driver import SweepOptions, SweepOutcome, run_sweep
from scrub.app.sweep.points import Point, expand
from scrub.app.sweep.sweep_file import SweepFile, load_sweep, parse_sweep

__all__ = ["SweepFile", "SweepOptions", "SweepOutcome", "Point", "load_sweep", "parse_sweep", "expand", "run_sweep"]
