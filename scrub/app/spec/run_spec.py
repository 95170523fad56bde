"""Spec files: a hypothesis with everything needed to test it, in YAML.

See docs/spec-format.md for the format. `load_spec(path)` parses and checks
the file; `prepare(spec)` loads the model and data and compiles the
hypothesis against them, so every mistake surfaces, located in the file,
before any scrubbing runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import pathlib
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from scrub.app.spec import position_groups
from scrub.app.spec.dry_run import dry_run
from scrub.app.spec.hypothesis_spec import hypothesis_to_dict, parse_hypothesis
from scrub.app.spec.sources import DATA_SOURCES, MODEL_SOURCES
from scrub.app.spec.yamlpos import Located, SpecError, dump_yaml, load_document, parse_yaml
from scrub.data import Dataset
from scrub.errors import AdapterError, DataError, MetricError, ScrubError, SpecValueError, did_you_mean

from hypotheses.nodes import Hypothesis
from hypotheses.registry import SpecValue

from metrics.cancel import CancelSettings
from metrics.distances import DISTANCES
from metrics.evaluate import default_distances
from metrics.losses import LOSSES
from metrics.protocol import metric_from_spec
from metrics.verdicts import VerdictRule

TOP_KEYS = ("name", "description", "imports", "model", "data", "loss", "metrics", "verdict", "cancel", "seeds",
            "reference", "policy", "batch_size", "hypothesis")
REQUIRED = ("model", "data", "loss", "hypothesis")
RULE_SETTINGS = ("min_loss_recovered", "max_distance_fraction", "distance", "min_gap", "independent_margin")
MAX_SEEDS = 1000  # seeds per spec
MAX_REFERENCE = 10_000_000  # reference data per spec (`reference: N`)
CANCEL_SETTINGS = tuple(f.name for f in fields(CancelSettings))  # the `cancel:` mapping: the report's thresholds


@dataclass
class RunSpec:
    file: str
    text: str
    doc: Located
    name: str
    hypothesis: Hypothesis
    model: dict
    data: dict
    loss: Any
    metrics: list
    rule: Any
    seeds: tuple
    reference: Optional[int]
    batch_size: Optional[int]
    node_keys: dict = field(default_factory=dict)  # node name -> key path in the document
    cancel: CancelSettings = field(default_factory=CancelSettings)  # the cancel-out report's thresholds

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def raw(self) -> dict:
        return self.doc.data

    @property
    def folder(self) -> pathlib.Path:
        return pathlib.Path(self.file).resolve().parent


def load_spec(path: str | pathlib.Path) -> RunSpec:
    text, doc = load_document(path)
    return parse_spec(text, str(path), doc)


def parse_spec(text: str, file: str = "<spec>", doc: Optional[Located] = None) -> RunSpec:
    """The spec in `text` (`doc`: its YAML, if already read with `load_document`)."""
    doc = doc if doc is not None else parse_yaml(text, file)
    try:
        with spec_folder_on_path(file):
            return _parse(doc, text, file)
    except SpecValueError as exc:  # a kind rejected its value: it says which key
        raise doc.error(exc.key, exc.message) from None
    except SpecError:
        raise
    except ScrubError as exc:  # the language rejected a node: it says which node and field
        raise locate(doc, _node_keys(doc), exc) from None


def _parse(doc: Located, text: str, file: str) -> RunSpec:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), f"a spec is a mapping with keys {', '.join(REQUIRED)} (and optionally "
                            f"{', '.join(k for k in TOP_KEYS if k not in REQUIRED)}).")
    for k in data:
        if k not in TOP_KEYS:
            raise doc.error((k,), f"unknown key {k!r}.{did_you_mean(k, TOP_KEYS)} Valid keys: {', '.join(TOP_KEYS)}.")
    for k in REQUIRED:
        if k not in data:
            raise doc.error((), f"missing required key {k!r}; a spec needs {', '.join(REQUIRED)}.")
    name = data.get("name", pathlib.Path(file).stem)
    _expect(doc, ("name",), name, str, "a string")
    _imports(doc)
    policy = data.get("policy", "shared")
    hypothesis = parse_hypothesis(doc, ("hypothesis",), name, policy)
    seeds = _seeds(doc, data.get("seeds", [0]))
    reference = data.get("reference")
    if reference is not None:
        _expect(doc, ("reference",), reference, int, "an integer (number of reference data)", 1, MAX_REFERENCE)
    batch_size = data.get("batch_size")
    if batch_size is not None:
        _expect(doc, ("batch_size",), batch_size, int, "an integer (reference data per chunk)", 1)
    model = _source(data["model"], ("model",), MODEL_SOURCES)
    data_spec = _source(data["data"], ("data",), DATA_SOURCES)
    loss = LOSSES.parse(SpecValue(data["loss"], ("loss",)))
    items = data.get("metrics", [])
    if not isinstance(items, list):
        raise doc.error(("metrics",), "metrics must be a list.")
    metrics = [metric_from_spec(SpecValue(item, ("metrics", i))) for i, item in enumerate(items)]
    _check_metric_names(doc, loss, metrics)
    return RunSpec(file, text, doc, name, hypothesis, model, data_spec, loss, metrics, _rule(doc), tuple(seeds),
                   reference, batch_size, _node_keys(doc), _cancel(doc))


def _check_metric_names(doc: Located, loss, metrics: list) -> None:
    """Every metric needs its own name: the loss and the distances reported by default are taken (a distance
    named again is simply reported once)."""
    taken = {"loss": "the loss's name", **{d: "a distance reported by default" for d in default_distances(loss)}}
    for i, m in enumerate(metrics):
        name = m if isinstance(m, str) else m.name
        if isinstance(m, str) and taken.get(name, "").startswith("a distance"):
            continue
        if name in taken:
            raise doc.error(("metrics", i), f"metric name {name!r} is already {taken[name]}; give this metric "
                                            "another name (`name:`), or drop it.")
        taken[name] = f"the name of metrics[{i}]" if not isinstance(m, str) else "a distance"


@contextlib.contextmanager
def spec_folder_on_path(file: str):
    """Modules beside a spec file are importable while it is read and loaded (as for a script beside them)."""
    folder = str(pathlib.Path(file).resolve().parent) if file and not file.startswith("<") else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _imports(doc: Located) -> None:
    """`imports: [module, ...]`: modules imported first, so the kinds they register (a sampler, a loss, ...)
    can be named in the rest of the spec."""
    modules = doc.data.get("imports", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise doc.error(("imports",), "imports must be a list of module names, e.g. [my_samplers].")
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise doc.error(("imports", i), f"cannot import module {module!r}: {exc}. Modules beside the spec file "
                                            "and installed packages can be imported.") from None


def _expect(doc: Located, key, value, typ, what: str, low: Optional[int] = None, high: Optional[int] = None) -> None:
    if not isinstance(value, typ) or isinstance(value, bool):
        raise doc.error(key, f"expected {what}, got {type(value).__name__} {value!r}.")
    if low is not None and value < low or high is not None and value > high:
        bounds = f"at least {low}" if high is None else f"between {low} and {high:,}"
        raise doc.error(key, f"{key[-1]} must be {bounds}; got {value}.")


def _seeds(doc: Located, seeds: Any) -> list:
    """`seeds:` a count (seeds 0..n-1) or a list of distinct integers."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_SEEDS:
            raise doc.error(("seeds",), f"seeds: give a count between 1 and {MAX_SEEDS:,}, or a list of seeds; got "
                                        f"{seeds}.")
        return list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise doc.error(("seeds",), f"seeds must be a count or a non-empty list of integers; got "
                                    f"{type(seeds).__name__} {seeds!r}.")
    if len(seeds) > MAX_SEEDS:
        raise doc.error(("seeds",), f"{len(seeds):,} seeds; at most {MAX_SEEDS:,}.")
    for i, s in enumerate(seeds):
        if not isinstance(s, int) or isinstance(s, bool):
            raise doc.error(("seeds", i), f"seeds must be integers; got {type(s).__name__} {s!r}.")
        if s in seeds[:i]:
            raise doc.error(("seeds", i), f"seed {s} is listed twice; a repeated seed repeats the same draws, so the "
                                          "spread over seeds would be understated. List distinct seeds.")
    return seeds


def _source(value: Any, key: tuple, sources) -> dict:
    """A `model:` or `data:` entry, read by its source kind (a bare string names a bundled one)."""
    if isinstance(value, str):
        value = {"bundled": value}
    return sources.parse(SpecValue(value, key))


def _cancel(doc: Located) -> CancelSettings:
    spec = doc.data.get("cancel", {}) or {}
    if not isinstance(spec, dict):
        raise doc.error(("cancel",), "cancel must be a mapping of cancel-out report settings.")
    defaults = CancelSettings()
    for k, v in spec.items():
        if k not in CANCEL_SETTINGS:
            raise doc.error(("cancel", k), f"unknown cancel setting {k!r}.{did_you_mean(k, CANCEL_SETTINGS)} "
                                           f"Valid: {', '.join(CANCEL_SETTINGS)}.")
        want = type(getattr(defaults, k))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (want is int and not isinstance(v, int)) \
                or v <= 0 or (want is int and k == "max_size" and v < 2):
            what = "an integer >= 2" if k == "max_size" else "a positive integer" if want is int else "a positive number"
            raise doc.error(("cancel", k), f"{k} must be {what}; got {v!r}.")
    return CancelSettings(**spec)


def _rule(doc: Located) -> VerdictRule:
    spec = doc.data.get("verdict", {}) or {}
    if not isinstance(spec, dict):
        raise doc.error(("verdict",), "verdict must be a mapping of rule settings.")
    for k, v in spec.items():
        if k not in RULE_SETTINGS:
            raise doc.error(("verdict", k), f"unknown verdict setting {k!r}; valid: {', '.join(RULE_SETTINGS)}.")
        if k == "distance":
            if v not in DISTANCES:
                raise doc.error(("verdict", k), f"distance must be one of {', '.join(DISTANCES)}.")
        elif not isinstance(v, (int, float)) or isinstance(v, bool):
            raise doc.error(("verdict", k), f"{k} must be a number.")
    try:
        return VerdictRule(**spec)
    except ScrubError as exc:  # a setting out of its range: the rule says which
        raise doc.error(("verdict", exc.field) if exc.field else ("verdict",), exc.message) from None


def expanded_names(node: dict) -> list[str]:
    """The node names one entry of the hypothesis stands for (an `each_position` entry: one per position)."""
    positions = position_groups.positions_of(node.get(position_groups.KEY)) if position_groups.KEY in node else None
    return [position_groups.fill(node["name"], p) for p in positions] if positions else [node["name"]]


def _node_keys(doc: Located) -> dict:
    """Node name -> every key path where a node of that name is written (document order)."""
    out: dict = {}

    def walk(key):
        node = doc.data
        for part in key:
            node = node[part]
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                for name in expanded_names(node):
                    out.setdefault(name, []).append(key)
            for i, _ in enumerate(node.get("children", []) if isinstance(node.get("children"), list) else []):
                walk(key + ("children", i))

    if isinstance(doc.data, dict) and "hypothesis" in doc.data:
        walk(("hypothesis",))
    return out


def locate(doc: Located, node_keys: dict, exc: ScrubError) -> SpecError:
    """A SpecError at the place a structured error names: its spec key, else its node (and field), else the
    part of the spec its type is about (data, model, loss), else the hypothesis. Never reads the message."""
    if exc.key:
        return doc.error(exc.key, exc.message)
    keys = node_keys.get(exc.node, [])
    if keys:
        key = keys[1] if exc.duplicate and len(keys) > 1 else keys[0]  # a repeated name: the second use
        if exc.field and exc.field in _at(doc, key):
            key = key + (exc.field,)
        return doc.error(key, exc.message)
    for kind, key in ((DataError, ("data",)), (AdapterError, ("model",)), (MetricError, ("loss",))):
        if isinstance(exc, kind):
            return doc.error(key, exc.message)
    return doc.error(("hypothesis",), exc.message)


def _at(doc: Located, key) -> dict:
    node = doc.data
    for part in key:
        node = node[part]
    return node if isinstance(node, dict) else {}


# --- loading what a spec names ------------------------------------------------------------

def load_model(spec: RunSpec, device: Optional[str] = None):
    from scrub.devices import resolve_device

    kind = next(iter(spec.model))
    device = resolve_device(device)  # a bad device is the caller's option, not the spec's: not located
    try:
        model = MODEL_SOURCES[kind].load(spec.model, spec.folder)
    except SpecError:
        raise
    except (OSError, ScrubError, RuntimeError) as exc:
        raise spec.doc.error(("model", kind), f"cannot load the model: {exc}") from None
    if device is not None:
        from scrub.adapters import Adapter

        target = model.model if isinstance(model, Adapter) else model
        target.to(device)
    return model


def load_data(spec: RunSpec) -> tuple[Dataset, Optional[list]]:
    """The dataset and, for cases that fix them, the reference indices."""
    kind = next(k for k in spec.data if k in DATA_SOURCES)
    try:
        built = DATA_SOURCES[kind].load(spec.data, spec.folder)
    except TypeError as exc:
        raise spec.doc.error(("data", "args"), f"bad arguments for the dataset: {exc}") from None
    except (OSError, ValueError, ImportError, ScrubError) as exc:
        raise spec.doc.error(("data", kind), f"cannot load the data: {exc}") from None
    data, reference = (built if isinstance(built, tuple) else (built, None))
    if not isinstance(data, Dataset):
        raise spec.doc.error(("data", kind), f"the data source returned a {type(data).__name__}, not a scrub.Dataset.")
    return data, reference


@dataclass
class Prepared:
    spec: RunSpec
    model: Any
    data: Dataset
    reference: Any
    warnings: tuple = ()  # e.g. a feature that is constant over the pool (recorded beside the verdict)


def prepare(spec: RunSpec, device: Optional[str] = None, reference: Optional[int] = None,
            model: Any = None) -> Prepared:
    """Load the model and data, compile the hypothesis against them and compute everything a run computes on
    a few reference data (`dry_run`): raises located SpecErrors for whatever a run would fail on.

    `model`: the spec's model already loaded (on `device`), e.g. one a sweep worker keeps between points."""
    from scrub.engine.run import compile as compile_hypothesis, reference_indices
    from scrub.engine.sampling import draw_roles

    with spec_folder_on_path(spec.file):
        model = load_model(spec, device) if model is None else model
        data, fixed_reference = load_data(spec)
    ref = reference if reference is not None else (spec.reference if spec.reference is not None else fixed_reference)
    try:
        compiled = compile_hypothesis(model, spec.hypothesis, data, ref)
        # draw the first seed's indices now (no forward pass): empty agreement classes surface here,
        # located in the file, not in the middle of a run
        seed = spec.seeds[0]
        draw_roles(compiled.plan, compiled.data, compiled.n_pool,
                   reference_indices(ref, compiled.n_pool, len(compiled.data), seed), seed, compiled.pool)
    except ScrubError as exc:
        raise locate(spec.doc, spec.node_keys, exc) from None
    dry_run(spec, model, data, ref, lambda exc: locate(spec.doc, spec.node_keys, exc))
    return Prepared(spec, model, data, ref, compiled.warnings[0])


def spec_dict(hypothesis: Hypothesis, *, model: dict, data: dict, loss: dict, seeds=(0,), metrics=None,
              verdict: Optional[dict] = None, reference: Optional[int] = None, description: Optional[str] = None) -> dict:
    """A spec document for a Python hypothesis (see `dump_yaml` to write it)."""
    out: dict = {"name": hypothesis.name}
    if description:
        out["description"] = description
    out.update({"model": model, "data": data, "loss": loss})
    if metrics:
        out["metrics"] = list(metrics)
    if verdict:
        out["verdict"] = verdict
    out["seeds"] = list(seeds)
    if reference is not None:
        out["reference"] = reference
    if hypothesis.policy != "shared":
        out["policy"] = hypothesis.policy
    out["hypothesis"] = hypothesis_to_dict(hypothesis)
    return out


def to_yaml(doc: dict) -> str:
    return dump_yaml(doc)
