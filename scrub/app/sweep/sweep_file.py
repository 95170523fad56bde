"""Sweep files: spec files crossed with axes of settings, in YAML (docs/sweeps.md).

    name: induction-grid              # optional (default: the file's name): the output folder and W&B group
    specs: [specs/*.yaml]             # required: spec files or globs, relative to this file
    axes:                             # optional: spec settings and their values; each combination is a point
      seed: [0, 1]                    # or a count: 2
      model: [{checkpoint: ckpts/*.pt}]
      data.args.n: [500, 2000]
    alpha: 0.025                      # optional: family-wise level of the sweep's ranking

Read like spec files (scrub/app/spec/yamlpos.py): every error names the file, line and key.
File paths in a sweep file (spec files, and the file settings of model and data sources) are
relative to the sweep file; they are made absolute here, so a point's spec reads them from anywhere.
"""

from __future__ import annotations

import glob
import hashlib
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import yaml

from scrub.app.spec import SpecError
from scrub.app.spec.sources import DATA_SOURCES, MODEL_SOURCES
from scrub.app.spec.yamlpos import Key, Located, parse_yaml
from scrub.errors import did_you_mean

TOP_KEYS = ("name", "description", "specs", "axes", "alpha")
# what an axis may set: the seed, and the spec's settings (a dotted name reaches inside one: data.args.n)
SETTINGS = ("seed", "model", "data", "loss", "metrics", "verdict", "policy", "reference", "batch_size")
NOT_SETTINGS = {
    "hypothesis": "a different hypothesis is a different spec file: list it under 'specs'",
    "seeds": "use the 'seed' axis (one point per seed), or set 'seeds' in the spec file to pool several seeds "
             "in one point",
    "name": "points are named after their spec and their axis values",
    "imports": "imports belong in the spec file",
    "description": "a description belongs in the spec file",
}
SOURCES = {"model": MODEL_SOURCES, "data": DATA_SOURCES}
DEFAULT_ALPHA = 0.025


@dataclass(frozen=True)
class AxisValue:
    value: Any   # as the point's spec will hold it (file paths made absolute)
    label: str   # as the point's name shows it
    key: Key     # where the sweep file writes it


@dataclass(frozen=True)
class Axis:
    name: str    # as written: "seed", "data.args.n"
    path: tuple  # the spec key it sets: ("seeds",) for the seed, ("data", "args", "n")
    values: tuple[AxisValue, ...]


@dataclass
class SweepFile:
    file: str
    text: str
    doc: Located
    name: str
    specs: tuple[pathlib.Path, ...]  # absolute, in order, each once
    spec_keys: tuple[Key, ...]       # where each was named
    axes: tuple[Axis, ...]
    alpha: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_sweep(path: str | pathlib.Path) -> SweepFile:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the sweep file: {getattr(exc, 'strerror', None) or exc}.", str(path)) from None
    return parse_sweep(text, str(path))


def parse_sweep(text: str, file: str = "<sweep>") -> SweepFile:
    if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise SpecError("the sweep file is empty; it needs at least 'specs' (the spec files to run).", file, 1)
    doc = parse_yaml(text, file)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), f"a sweep file is a mapping with the key 'specs' (and optionally "
                            f"{', '.join(k for k in TOP_KEYS if k != 'specs')}).")
    for k in data:
        if k not in TOP_KEYS:
            raise doc.error((k,), f"unknown key {k!r}.{did_you_mean(str(k), TOP_KEYS)} Valid keys: "
                                  f"{', '.join(TOP_KEYS)}.")
    if "specs" not in data:
        raise doc.error((), "missing required key 'specs': the spec files (or globs) the sweep runs.")
    folder = pathlib.Path(file).resolve().parent if not file.startswith("<") else pathlib.Path.cwd()
    name = data.get("name", pathlib.Path(file).stem)
    if not isinstance(name, str) or not name.strip():
        raise doc.error(("name",), f"name must be a non-empty string, got {name!r}.")
    if not isinstance(data.get("description", ""), str):
        raise doc.error(("description",), "description must be a string.")
    specs, spec_keys = _specs(doc, folder)
    axes = _axes(doc, folder)
    alpha = data.get("alpha", DEFAULT_ALPHA)
    if not _number(alpha) or not 0 < alpha < 1:
        raise doc.error(("alpha",), f"alpha must be a number between 0 and 1, got {alpha!r}.")
    return SweepFile(file, text, doc, name, specs, spec_keys, axes, float(alpha))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _specs(doc: Located, folder: pathlib.Path) -> tuple[tuple, tuple]:
    entries = doc.data["specs"]
    entries = [entries] if isinstance(entries, str) else entries
    if not isinstance(entries, list) or not entries:
        raise doc.error(("specs",), "specs must be a spec file, a glob, or a non-empty list of them.")
    keys = [("specs",)] if isinstance(doc.data["specs"], str) else [("specs", i) for i in range(len(entries))]
    itself = pathlib.Path(doc.file).resolve() if not doc.file.startswith("<") else None
    seen: dict = {}
    for entry, key in zip(entries, keys):
        if not isinstance(entry, str) or not entry.strip():
            raise doc.error(key, f"expected a spec file or glob (a string), got {entry!r}.")
        # `*.yaml` beside the sweep file matches the sweep file too: it is not a spec
        paths = [p for p in _paths(doc, key, entry, folder, "spec file") if p != itself]
        if not paths:
            raise doc.error(key, f"{entry!r} names only this sweep file; specs lists the spec files it runs.")
        for path in paths:
            seen.setdefault(path, key)  # a file two globs match runs once
    return tuple(seen), tuple(seen.values())


def _paths(doc: Located, key: Key, pattern: str, folder: pathlib.Path, what: str) -> list[pathlib.Path]:
    """The files a path or glob names, relative to the sweep file's folder, sorted."""
    full = folder / pathlib.Path(pattern).expanduser()
    if glob.has_magic(pattern):
        found = sorted(pathlib.Path(p).resolve() for p in glob.glob(str(full), recursive=True))
        if not found:
            raise doc.error(key, f"no {what} matches {pattern!r} (globs are relative to the sweep file's folder, "
                                 f"{folder}).")
        return found
    if not full.exists():
        raise doc.error(key, f"no {what} {pattern!r} (looked for {full.resolve()}; paths are relative to the "
                             "sweep file's folder).")
    return [full.resolve()]


# --- axes ---------------------------------------------------------------------------------

def _axes(doc: Located, folder: pathlib.Path) -> tuple[Axis, ...]:
    spec = doc.data.get("axes", {})
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise doc.error(("axes",), "axes must be a mapping of spec settings to lists of values, e.g. "
                                   "{seed: [0, 1], data.args.n: [500, 2000]}.")
    return tuple(_axis(doc, ("axes", name), name, values, folder) for name, values in spec.items())


def _axis(doc: Located, key: Key, name: str, values: Any, folder: pathlib.Path) -> Axis:
    path = tuple(str(name).split("."))
    if not all(path):
        raise doc.error(key, f"axis {name!r}: a dot separates setting names (data.args.n); empty names are invalid.")
    top = path[0]
    if top in NOT_SETTINGS:
        raise doc.error(key, f"{name!r} cannot be an axis: {NOT_SETTINGS[top]}.")
    if top not in SETTINGS:
        raise doc.error(key, f"unknown setting {top!r} for an axis.{did_you_mean(top, SETTINGS)} Axes can set: "
                             f"{', '.join(SETTINGS)} (a dot reaches inside one: data.args.n).")
    if top == "seed":
        if len(path) > 1:
            raise doc.error(key, "the seed axis is 'seed' (a list of seeds, or a count).")
        return Axis(name, ("seeds",), _seed_values(doc, key, values))
    items, keys = (values, [key + (i,) for i in range(len(values))]) if isinstance(values, list) else ([values], [key])
    if not items:
        raise doc.error(key, f"axis {name!r} has no values; give a list of values (a single value sets it for every "
                             "point).")
    out: list[AxisValue] = []
    for item, item_key in zip(items, keys):
        out.extend(_values(doc, item_key, path, item, folder))
    labels = [v.label for v in out]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise doc.error(out[i].key, f"axis {name!r} lists the value {label} twice.")
    return Axis(name, path, tuple(out))


def _seed_values(doc: Located, key: Key, values: Any) -> tuple[AxisValue, ...]:
    if isinstance(values, int) and not isinstance(values, bool):
        if values < 1:
            raise doc.error(key, "seed: give a count >= 1 or a list of seeds.")
        return tuple(AxisValue([s], str(s), key) for s in range(values))
    if not isinstance(values, list) or not values or not all(isinstance(s, int) and not isinstance(s, bool)
                                                             for s in values):
        raise doc.error(key, f"seed must be a count or a non-empty list of integers, got {values!r}.")
    if len(set(values)) != len(values):
        raise doc.error(key, f"seed lists a seed twice: {values}.")
    return tuple(AxisValue([s], str(s), key + (i,)) for i, s in enumerate(values))


def _values(doc: Located, key: Key, path: tuple, value: Any, folder: pathlib.Path) -> list[AxisValue]:
    """One written value; a glob in a file setting gives one value per matching file."""
    sources = SOURCES.get(path[0])
    if sources is not None and len(path) == 2 and isinstance(value, str) and _is_path_key(sources, path[1]):
        return [AxisValue(str(p), _relative(p, folder), key) for p in _paths(doc, key, value, folder, "file")]
    if sources is not None and len(path) == 1 and isinstance(value, dict):
        kind = next((k for k in value if k in sources), None)
        for setting in getattr(sources[kind], "PATHS", ()) if kind else ():
            if isinstance(value.get(setting), str):
                return [AxisValue({**value, setting: str(p)}, _relative(p, folder), key)
                        for p in _paths(doc, key + (setting,), value[setting], folder, "file")]
    return [AxisValue(value, _label(value), key)]


def _is_path_key(sources, setting: str) -> bool:
    return any(setting in getattr(sources[kind], "PATHS", ()) for kind in sources)


def _relative(path: pathlib.Path, folder: pathlib.Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _label(value: Any) -> str:
    """A value as a point name shows it: scalars as written, anything else in compact YAML."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
