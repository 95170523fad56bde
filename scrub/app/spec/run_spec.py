"""Spec files: a hypothesis with everything needed to test it, in YAML.

See docs/spec-format.md for the format. `load_spec(path)` parses and checks
the file; `prepare(spec)` loads the model and data and compiles the
hypothesis against them, so every mistake surfaces, located in the file,
before any scrubbing runs.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

import scrub
from hypotheses.cases import registry
from scrub.data import Dataset
from scrub.errors import ScrubError, did_you_mean
from scrub.app.spec.hypothesis_spec import hypothesis_to_dict, parse_hypothesis
from scrub.app.spec.imports import import_object
from scrub.app.spec.yamlpos import Located, SpecError, dump_yaml, parse_yaml

from hypotheses.nodes import Hypothesis

TOP_KEYS = ("name", "description", "model", "data", "loss", "metrics", "verdict", "seeds", "reference", "policy",
            "batch_size", "hypothesis")
REQUIRED = ("model", "data", "loss", "hypothesis")
DISTANCE_NAMES = ("kl", "kl_reverse", "l2_logits", "l2_probs")


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
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {exc.strerror}.", str(path)) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, file: str = "<spec>") -> RunSpec:
    doc = parse_yaml(text, file)
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
    policy = data.get("policy", "shared")
    try:
        hypothesis = parse_hypothesis(doc, ("hypothesis",), name, policy)
    except SpecError:
        raise
    except ScrubError as exc:  # structural errors found by the hypothesis language itself (located by node)
        raise _locate(doc, _node_keys(doc), exc) from None
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise doc.error(("seeds",), "seeds: give a count >= 1 or a list of seeds.")
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise doc.error(("seeds",), "seeds must be a count or a non-empty list of integers.")
    reference = data.get("reference")
    if reference is not None:
        _expect(doc, ("reference",), reference, int, "an integer (number of reference data)")
    batch_size = data.get("batch_size")
    if batch_size is not None:
        _expect(doc, ("batch_size",), batch_size, int, "an integer")
    return RunSpec(file, text, doc, name, hypothesis, _model_spec(doc), _data_spec(doc), _loss(doc),
                   _metrics(doc), _rule(doc), tuple(seeds), reference, batch_size, _node_keys(doc))


def _expect(doc: Located, key, value, typ, what: str) -> None:
    if not isinstance(value, typ) or isinstance(value, bool):
        raise doc.error(key, f"expected {what}, got {type(value).__name__} {value!r}.")


def _one_of(doc: Located, key, spec, kinds: tuple, extra: tuple = ()) -> str:
    if not isinstance(spec, dict):
        raise doc.error(key, f"expected a mapping with one of {', '.join(kinds)}; got {spec!r}.")
    found = [k for k in kinds if k in spec]
    if len(found) != 1:
        raise doc.error(key, f"give exactly one of {', '.join(kinds)}" + (f" (found {', '.join(found)})" if found
                                                                           else "") + ".")
    allowed = (found[0],) + extra
    for k in spec:
        if k not in allowed:
            raise doc.error(key + (k,), f"unknown key {k!r} here; valid: {', '.join(allowed)}.")
    return found[0]


def _model_spec(doc: Located) -> dict:
    spec = doc.data["model"]
    if isinstance(spec, str):  # shorthand: a bundled name
        spec = {"bundled": spec}
    kind = _one_of(doc, ("model",), spec, ("bundled", "checkpoint", "transformer_lens"))
    if kind == "bundled" and spec["bundled"] not in registry.MODELS:
        raise doc.error(("model", "bundled"), f"no bundled model {spec['bundled']!r}."
                        f"{did_you_mean(str(spec['bundled']), registry.MODELS)} Bundled: {', '.join(registry.MODELS)}.")
    _expect(doc, ("model", kind), spec[kind], str, "a string")
    return spec


def _data_spec(doc: Located) -> dict:
    spec = doc.data["data"]
    if isinstance(spec, str):
        spec = {"bundled": spec}
    kind = _one_of(doc, ("data",), spec, ("bundled", "file", "function"), extra=("args",))
    _expect(doc, ("data", kind), spec[kind], str, "a string")
    if kind == "bundled" and spec["bundled"] not in registry.DATASETS:
        raise doc.error(("data", "bundled"), f"no bundled dataset {spec['bundled']!r}."
                        f"{did_you_mean(str(spec['bundled']), registry.DATASETS)} "
                        f"Bundled: {', '.join(registry.DATASETS)}.")
    if "args" in spec and not isinstance(spec["args"], dict):
        raise doc.error(("data", "args"), "args must be a mapping of keyword arguments.")
    return spec


def _loss(doc: Located):
    from metrics.losses import ClassificationLoss, MSELoss, NextTokenLoss

    spec = doc.data["loss"]
    if isinstance(spec, str):
        spec = {spec: {}}
    kind = _one_of(doc, ("loss",), spec, ("next_token", "classification", "mse"))
    args = spec[kind] or {}
    if not isinstance(args, dict):
        raise doc.error(("loss", kind), "loss settings must be a mapping.")
    allowed = {"next_token": ("mask",), "classification": ("position",), "mse": ("position", "dims")}[kind]
    for k in args:
        if k not in allowed:
            raise doc.error(("loss", kind, k), f"unknown setting {k!r} for the {kind} loss; valid: {', '.join(allowed)}.")
    if kind == "next_token":
        return NextTokenLoss(args.get("mask", "loss_mask"))
    position = args.get("position", 0)
    _expect(doc, ("loss", kind, "position"), position, int, "an integer position")
    if kind == "classification":
        return ClassificationLoss(position)
    dims = args.get("dims")
    if dims is not None and (not isinstance(dims, list) or not all(isinstance(d, int) for d in dims)):
        raise doc.error(("loss", kind, "dims"), "dims must be a list of output indices.")
    return MSELoss(position, None if dims is None else tuple(dims))


def _metrics(doc: Located) -> list:
    from metrics import protocol

    items = doc.data.get("metrics", [])
    if not isinstance(items, list):
        raise doc.error(("metrics",), "metrics must be a list.")
    out = []
    for i, item in enumerate(items):
        key = ("metrics", i)
        if isinstance(item, str):
            if item not in DISTANCE_NAMES:
                raise doc.error(key, f"unknown metric {item!r}.{did_you_mean(item, DISTANCE_NAMES)} Names: "
                                     f"{', '.join(DISTANCE_NAMES)}; or a mapping: accuracy, logit_diff, agreement, function.")
            out.append(item)
            continue
        kind = _one_of(doc, key, item, ("accuracy", "agreement", "logit_diff", "function"), extra=("kind", "name"))
        args = item[kind]
        if kind in ("accuracy", "agreement"):
            pos = (args or {}).get("position", 0) if isinstance(args, dict) else args
            out.append(getattr(protocol, kind)(pos))
        elif kind == "logit_diff":
            if not isinstance(args, dict) or not {"correct", "incorrect"} <= set(args):
                raise doc.error(key, "logit_diff needs {correct: TOKEN|FIELD, incorrect: TOKEN|FIELD, position: P}.")
            out.append(protocol.logit_diff(args["correct"], args["incorrect"], args.get("position", -1)))
        else:
            try:
                fn = import_object(args)
            except (ValueError, ImportError) as exc:
                raise doc.error(key + ("function",), f"cannot import metric {args!r}: {exc}") from None
            metric_kind = item.get("kind", "comparison")
            if metric_kind not in ("output", "comparison"):
                raise doc.error(key + ("kind",), "kind must be 'output' (fn(outputs, batch)) or 'comparison' "
                                                 "(fn(scrubbed, model, batch)).")
            cls = protocol.OutputMetric if metric_kind == "output" else protocol.ComparisonMetric
            out.append(cls(item.get("name", fn.__name__), fn))
    return out


def _rule(doc: Located):
    from metrics.verdicts import VerdictRule

    spec = doc.data.get("verdict", {}) or {}
    if not isinstance(spec, dict):
        raise doc.error(("verdict",), "verdict must be a mapping of rule settings.")
    allowed = ("min_loss_recovered", "max_distance_fraction", "distance", "min_gap")
    for k, v in spec.items():
        if k not in allowed:
            raise doc.error(("verdict", k), f"unknown verdict setting {k!r}; valid: {', '.join(allowed)}.")
        if k == "distance":
            if v not in DISTANCE_NAMES:
                raise doc.error(("verdict", k), f"distance must be one of {', '.join(DISTANCE_NAMES)}.")
        elif not isinstance(v, (int, float)) or isinstance(v, bool):
            raise doc.error(("verdict", k), f"{k} must be a number.")
    return VerdictRule(**spec)


def _node_keys(doc: Located) -> dict:
    """Node name -> every key path where a node of that name is written (document order)."""
    out: dict = {}

    def walk(key):
        node = doc.data
        for part in key:
            node = node[part]
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                out.setdefault(node["name"], []).append(key)
            for i, _ in enumerate(node.get("children", []) if isinstance(node.get("children"), list) else []):
                walk(key + ("children", i))

    if isinstance(doc.data, dict) and "hypothesis" in doc.data:
        walk(("hypothesis",))
    return out


def _locate(doc: Located, node_keys: dict, exc: Exception) -> SpecError:
    """A SpecError at the node an engine error names (or at the hypothesis)."""
    message = str(exc)
    duplicate = re.search(r"two nodes are named '([^']+)'", message)
    if duplicate and len(node_keys.get(duplicate.group(1), [])) > 1:
        return doc.error(node_keys[duplicate.group(1)][1] + ("name",), message)  # the second one is the repeat
    for name in re.findall(r"node '([^']+)'", message):
        if name in node_keys:
            key = node_keys[name][0]
            sub = "paths" if "path" in message else None
            return doc.error(key + ((sub,) if sub and sub in _at(doc, key) else ()), message)
    return doc.error(("hypothesis",), message)


def _at(doc: Located, key) -> dict:
    node = doc.data
    for part in key:
        node = node[part]
    return node if isinstance(node, dict) else {}


# --- loading what a spec names ------------------------------------------------------------

def load_model(spec: RunSpec, device: Optional[str] = None):
    m = spec.model
    try:
        if "bundled" in m:
            model = registry.MODELS[m["bundled"]]()
        elif "checkpoint" in m:
            path = (spec.folder / m["checkpoint"]).resolve()
            model = scrub.load_checkpoint(path)
        else:
            model = _transformer_lens_model(m["transformer_lens"])
    except SpecError:
        raise
    except (OSError, ScrubError, RuntimeError) as exc:
        key = ("model", next(iter(m)))
        raise spec.doc.error(key, f"cannot load the model: {exc}") from None
    if device is not None:
        target = model.model if isinstance(model, scrub.Adapter) else model
        target.to(device)
    return model


def _transformer_lens_model(name: str):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
    from transformer_lens.model_bridge import TransformerBridge

    try:
        return TransformerBridge.boot_transformers(name)
    except Exception as exc:  # noqa: BLE001 - the hub/transformers raise many kinds
        raise ScrubError(f"{name!r} is not available locally ({type(exc).__name__}); scrub does not download "
                         "models. Cache it with transformers beforehand, or save a checkpoint.") from None


def load_data(spec: RunSpec) -> tuple[Dataset, Optional[list]]:
    """The dataset and, for cases that fix them, the reference indices."""
    d = spec.data
    args = d.get("args", {})
    kind = next(k for k in ("bundled", "file", "function") if k in d)
    try:
        if kind == "bundled":
            built = registry.DATASETS[d["bundled"]](**args)
        elif kind == "file":
            built = _data_file((spec.folder / d["file"]).resolve())
        else:
            built = import_object(d["function"])(**args)
    except TypeError as exc:
        raise spec.doc.error(("data", "args"), f"bad arguments for the dataset: {exc}") from None
    except (OSError, ValueError, ImportError, ScrubError) as exc:
        raise spec.doc.error(("data", kind), f"cannot load the data: {exc}") from None
    data, reference = (built if isinstance(built, tuple) else (built, None))
    if not isinstance(data, Dataset):
        raise spec.doc.error(("data", kind), f"the data source returned a {type(data).__name__}, not a scrub.Dataset.")
    return data, reference


def _data_file(path: pathlib.Path) -> Dataset:
    if path.suffix == ".pt":
        blob = torch.load(path, map_location="cpu", weights_only=True)
    elif path.suffix == ".json":
        blob = json.loads(path.read_text())
        blob = {k: (torch.tensor(v) if k in ("inputs", "labels") else v) for k, v in blob.items()}
        blob["fields"] = {k: torch.tensor(v) for k, v in blob.get("fields", {}).items()}
    else:
        raise ValueError(f"{path.name}: data files are .pt (a dict of tensors) or .json.")
    if not isinstance(blob, dict) or "inputs" not in blob:
        raise ValueError(f"{path.name} must hold a mapping with 'inputs' (and optionally labels, raw, fields).")
    unknown = set(blob) - {"inputs", "labels", "raw", "fields", "name"}
    if unknown:
        raise ValueError(f"{path.name} has unknown entries {sorted(unknown)}.")
    return Dataset(blob["inputs"], blob.get("labels"), blob.get("raw"), blob.get("fields", {}),
                   blob.get("name", path.stem))


@dataclass
class Prepared:
    spec: RunSpec
    model: Any
    data: Dataset
    reference: Any


def prepare(spec: RunSpec, device: Optional[str] = None, reference: Optional[int] = None) -> Prepared:
    """Load the model and data, and compile the hypothesis against them (raises located SpecErrors)."""
    model = load_model(spec, device)
    data, fixed_reference = load_data(spec)
    ref = reference if reference is not None else (spec.reference if spec.reference is not None else fixed_reference)
    try:
        compiled = scrub.compile(model, spec.hypothesis, data, ref)
        # draw the first seed's indices now (no forward pass): empty agreement classes and failing
        # feature functions surface here, located in the file, not in the middle of a run
        from scrub.engine.run import reference_indices
        from scrub.engine.sampling import draw_roles
        seed = spec.seeds[0]
        draw_roles(compiled.plan, compiled.data, compiled.n_pool,
                   reference_indices(ref, compiled.n_pool, len(compiled.data), seed), seed)
    except ScrubError as exc:
        raise _locate(spec.doc, spec.node_keys, exc) from None
    return Prepared(spec, model, data, ref)


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
