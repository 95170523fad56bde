"""The points of a sweep: every spec file crossed with every combination of axis values.

A point is its spec file's document with the axes' settings written in and its name set to the
point's name, read again by the spec reader (`parse_spec`). Its file stays the spec's, so imports and
relative paths resolve as for the spec itself; so a point runs exactly as `scrub run` runs the
point's spec.yaml (or the spec file with `--seed S --seeds 1` when only the seed varies).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass, replace

from scrub.app.cli.runner import Settings, slug
from scrub.app.spec import RunSpec, SpecError, load_spec, parse_spec, to_yaml
from scrub.app.spec.yamlpos import Located, key_text
from scrub.app.sweep.sweep_file import Axis, AxisValue, SweepFile

MAX_SLUG = 100  # folder names stay well under file-system limits


@dataclass(frozen=True)
class Point:
    id: str          # "induction heads [seed=0, data.args.n=500]"
    slug: str        # its folder in the sweep's output folder
    spec: RunSpec    # the point's spec: the spec file's, with the axis values written in
    spec_file: str   # the spec file it came from
    values: tuple    # the AxisValue of each axis

    def axes(self, sweep: SweepFile) -> dict:
        return {axis.name: v.label for axis, v in zip(sweep.axes, self.values)}

    def task(self, reference: int | None, device: str | None) -> dict:
        """What a worker needs to run the point (plain data: it may travel to another machine)."""
        return {"id": self.id, "text": self.spec.text, "file": self.spec.file, "lines": self.spec.doc.lines,
                "reference": reference, "device": device}


def point_settings(spec: RunSpec, reference: int | None = None, device: str | None = None) -> Settings:
    """What `scrub run` of a point's spec uses; its key says whether a saved result is the point's."""
    return Settings(spec.seeds, reference, device, False)


def read_point(text: str, file: str, lines: dict) -> RunSpec:
    """A point's spec from its text. Its document is the spec file's with some settings changed, so
    errors found later (against the model and data) name the spec file's lines."""
    spec = parse_spec(text, file)
    return replace(spec, doc=Located(spec.doc.data, lines, file))


def expand(sweep: SweepFile) -> list[Point]:
    """Every point, each read and checked as a spec file is (located errors), before anything runs."""
    specs = [load_spec(path) for path in sweep.specs]
    named: dict = {}
    for spec, key in zip(specs, sweep.spec_keys):
        if spec.name in named:
            raise sweep.doc.error(key, f"{spec.file} and {named[spec.name]} are both named {spec.name!r}; their "
                                       "points would share folders. Give one a different 'name:'.")
        named[spec.name] = spec.file
    points = [_point(sweep, spec, combo) for spec in specs
              for combo in itertools.product(*(axis.values for axis in sweep.axes))]
    folders: dict = {}
    for p in points:
        if p.slug in folders:
            raise sweep.doc.error(("axes",), f"points {folders[p.slug]!r} and {p.id!r} would share the folder "
                                             f"{p.slug!r}; make their names differ by more than punctuation.")
        folders[p.slug] = p.id
    return points


def point_slug(point_id: str) -> str:
    s = slug(point_id)
    if len(s) <= MAX_SLUG:
        return s
    return s[:MAX_SLUG - 11].rstrip("-.") + "-" + hashlib.sha256(point_id.encode()).hexdigest()[:10]


def _point(sweep: SweepFile, spec: RunSpec, combo: tuple[AxisValue, ...]) -> Point:
    labels = [f"{axis.name}={v.label}" for axis, v in zip(sweep.axes, combo)]
    point_id = spec.name + (" [" + ", ".join(labels) + "]" if labels else "")
    doc = {k: copy.deepcopy(v) for k, v in spec.raw.items() if k != "name"}
    for axis, value in zip(sweep.axes, combo):
        _set(sweep, doc, axis, value, spec)
    try:
        point_spec = read_point(to_yaml({"name": point_id, **doc}), spec.file, spec.doc.lines)
    except SpecError as exc:
        raise blame(sweep, combo, point_id, exc.key, exc.detail) or sweep.doc.error(
            ("axes",), f"point {point_id!r} is not a valid spec: {exc.detail}" +
            (f" (at key '{exc.key}')" if exc.key else "")) from None
    return Point(point_id, point_slug(point_id), point_spec, spec.file, combo)


def _set(sweep: SweepFile, doc: dict, axis: Axis, value: AxisValue, spec: RunSpec) -> None:
    node = doc
    for depth, part in enumerate(axis.path[:-1]):
        if part not in node:
            node[part] = {}
        child = node[part]
        if depth == 0 and part in ("model", "data") and isinstance(child, str):
            child = node[part] = {"bundled": child}  # the spec's shorthand, written out
        elif not isinstance(child, dict):
            where = ".".join(axis.path[:depth + 1])
            raise sweep.doc.error(value.key, f"axis {axis.name!r}: in {spec.file}, {where!r} is "
                                             f"{child!r}, not a mapping the axis can set a value inside.")
        node = child
    node[axis.path[-1]] = copy.deepcopy(value.value)


def blame(sweep: SweepFile, combo: tuple[AxisValue, ...], point_id: str, key: str | None,
          detail: str) -> SpecError | None:
    """An error at spec key `key` of a point, located at the axis value that set that key (keys are
    structure, not message), or None when no axis set it (the spec file itself is at fault)."""
    if not key:
        return None
    for axis, value in zip(sweep.axes, combo):
        mine = key_text(axis.path)
        if key == mine or key.startswith((mine + ".", mine + "[")) or mine.startswith(key + "."):
            return sweep.doc.error(value.key, f"point {point_id!r}: {detail}")
    return None
