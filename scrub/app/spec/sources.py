"""Where a spec's model and data come from: `model:` and `data:` kinds, each registered once.

    model: {bundled: induction} | {checkpoint: FILE} | {hf: FOLDER-or-NAME, dtype: ...}
           | {function: package.module.build, args: {...}} | {transformer_lens: NAME}
    data:  {bundled: NAME, args: {...}} | {file: FILE} | {function: package.module.fn, args: {...}}

A source checks its settings when the spec is read (`check`, no loading) and
loads when the spec is prepared (`load`, relative paths from the spec's folder).
A new source is one class and one registration line in this file.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import torch

from scrub.errors import AdapterError, DataError, did_you_mean
from scrub.files import load_tensors

from hypotheses.cases import registry as cases
from hypotheses.registry import Registry, SpecValue, callable_object

MODEL_SOURCES: Registry = Registry("model source")
DATA_SOURCES: Registry = Registry("data source")


class Source:
    """A kind of `model:` or `data:` entry. KEYS: the settings allowed beside the kind's own key."""

    spec_name = ""
    KEYS: tuple[str, ...] = ()
    PATHS: tuple[str, ...] = ()  # settings that are file paths relative to the spec's folder (a sweep rebases them)
    doc = ""

    @classmethod
    def from_spec(cls, spec: SpecValue) -> dict:
        value = spec.mapping((cls.spec_name,) + cls.KEYS, f"a {cls.spec_name} source")
        if not isinstance(value[cls.spec_name], str):
            raise spec.error(f"expected a string, got {type(value[cls.spec_name]).__name__} "
                             f"{value[cls.spec_name]!r}.", cls.spec_name)
        if "args" in value and not isinstance(value["args"], dict):
            raise spec.error("args must be a mapping of keyword arguments.", "args")
        cls.check(spec)
        return dict(value)

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        """Checks that need nothing loaded."""

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        raise NotImplementedError


def _known(spec: SpecValue, table: dict, what: str) -> None:
    name = spec.value["bundled"]
    if name not in table:
        raise spec.error(f"no bundled {what} {name!r}.{did_you_mean(name, table)} Bundled: {', '.join(table)}.",
                         "bundled")


# --- models -------------------------------------------------------------------------------

@MODEL_SOURCES.register("bundled")
class BundledModel(Source):
    doc = "a case study's model by name"

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        _known(spec, cases.MODELS, "model")

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        return cases.MODELS[settings["bundled"]]()


@MODEL_SOURCES.register("checkpoint")
class CheckpointModel(Source):
    PATHS = ("checkpoint",)
    doc = "a ScrubTransformer checkpoint file (relative to the spec's folder)"

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        from scrub.models.transformer import load_checkpoint

        return load_checkpoint((folder / settings["checkpoint"]).resolve())


@MODEL_SOURCES.register("hf")
class HuggingFaceModel(Source):
    KEYS = ("dtype",)
    doc = ("a Hugging Face causal language model as a TransformerLens bridge: a save_pretrained folder (relative to "
           "the spec's folder) or a name in the local HF cache; never downloads (dtype: float32, bfloat16, ...)")

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        from scrub.huggingface import DTYPES

        dtype = spec.get("dtype")
        if dtype is not None and dtype not in DTYPES:
            raise spec.error(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}.", "dtype")

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        from scrub.huggingface import load_hf

        name = settings[cls.spec_name]
        beside = folder / name
        return load_hf(beside if beside.exists() else name, dtype=settings.get("dtype"))


@MODEL_SOURCES.register("transformer_lens")
class TransformerLensModel(HuggingFaceModel):
    KEYS = ()
    doc = "the same as hf: a model name in the local Hugging Face cache (or a folder), as a TransformerLens bridge"


@MODEL_SOURCES.register("function")
class ModelFunction(Source):
    KEYS = ("args",)
    doc = ("a function named by import path (modules beside the spec can be named) returning a model scrub can "
           "adapt: a TransformerBridge, a HookedRootModule, a ScrubTransformer, or an adapter such as "
           "scrub.additive(...)")

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        callable_object(spec, "function", what="model function")

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        from hypotheses.registry import import_object
        from scrub.adapters import adapt

        name = settings["function"]
        try:
            model = import_object(name)(**settings.get("args", {}))
        except TypeError as exc:
            raise AdapterError(f"calling {name}: {exc}") from None
        adapt(model)  # refuse, located in the spec, what scrub cannot adapt
        return model


# --- data ---------------------------------------------------------------------------------

@DATA_SOURCES.register("bundled")
class BundledData(Source):
    KEYS = ("args",)
    doc = "a case study's data set by name (args: its generator's keyword arguments)"

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        _known(spec, cases.DATASETS, "dataset")

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        return cases.DATASETS[settings["bundled"]](**settings.get("args", {}))


@DATA_SOURCES.register("file")
class DataFile(Source):
    PATHS = ("file",)
    doc = "a .pt (dict of tensors, loaded with weights_only) or .json data file"

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        from scrub.data import Dataset

        path = (folder / settings["file"]).resolve()
        if path.suffix == ".pt":
            blob = load_tensors(path, "data file")
        elif path.suffix == ".json":
            blob = _json_blob(path)
        else:
            raise DataError(f"{path.name}: data files are .pt (a dict of tensors) or .json.")
        if not isinstance(blob, dict) or "inputs" not in blob:
            raise DataError(f"{path.name} must hold a mapping with 'inputs' (and optionally labels, raw, fields, "
                            f"name); it holds {_what(blob)}.")
        unknown = set(blob) - {"inputs", "labels", "raw", "fields", "name"}
        if unknown:
            raise DataError(f"{path.name} has unknown entries {sorted(unknown)}; valid: inputs, labels, raw, fields, "
                            "name.")
        if not isinstance(blob.get("fields", {}), dict):
            raise DataError(f"{path.name}: 'fields' must be a mapping of column name to values.")
        return Dataset(blob["inputs"], blob.get("labels"), blob.get("raw"), blob.get("fields", {}),
                       str(blob.get("name", path.stem)))


def _what(blob: Any) -> str:
    if isinstance(blob, dict):
        return f"a mapping with keys {sorted(map(str, blob))[:8]}"
    return f"a {type(blob).__name__}" + (f" of {len(blob)} items" if isinstance(blob, (list, tuple)) else "")


def _json_blob(path: pathlib.Path) -> Any:
    """A .json data file: lists become tensors (inputs, labels and every field)."""
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(blob, dict):
        return blob  # the caller says what a data file must hold

    def tensor(key: str, value: Any):
        try:
            return torch.tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path.name}: {key!r} must be a list of numbers (or of equal-length lists of numbers); "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}") from None

    out = {k: (tensor(k, v) if k in ("inputs", "labels") else v) for k, v in blob.items()}
    if isinstance(out.get("fields", {}), dict):
        out["fields"] = {k: tensor(f"fields.{k}", v) for k, v in out.get("fields", {}).items()}
    return out


@DATA_SOURCES.register("function")
class DataFunction(Source):
    KEYS = ("args",)
    doc = "a function named by import path returning a Dataset (or (Dataset, reference indices))"

    @classmethod
    def check(cls, spec: SpecValue) -> None:
        callable_object(spec, "function", what="data function")

    @classmethod
    def load(cls, settings: dict, folder: pathlib.Path) -> Any:
        from hypotheses.registry import import_object

        return import_object(settings["function"])(**settings.get("args", {}))
