"""Features: functions of the datum that a node claims the model computes.

A feature maps a whole dataset to one hashable value per datum (vectorised),
or is written per datum and mapped over a column (`from_datum`). Two data with
equal feature values are interchangeable for a node that samples by agreement.
Features are evaluated once per dataset, at compile time, never on a hot path.

Built-ins: `token_at(pos)`, `tokens_at(positions)`, `label()`, `identity()`
(the whole input: behaves like exact), `constant()` (behaves like
unconditional), `column(name)`; and `function` for a user's function named by
import path. Each is registered once in `FEATURES`, which spec files, the
command line and the docs read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from scrub.errors import DataError, HypothesisError

from hypotheses.registry import Registry, SpecValue, callable_object


@dataclass(frozen=True)
class Feature:
    """A named function of the data. `ref` is an import path (for spec files),
    `args` the built-in's arguments; equality is by name, ref and args."""

    name: str
    fn: Callable[[Any], Any] = field(compare=False, repr=False)
    per_datum: bool = False  # fn takes one datum's column entry, not the dataset
    column: str = "raw"  # with per_datum: which column to map over
    ref: Optional[str] = None
    args: tuple = ()

    def raw_values(self, dataset) -> Any:
        """The feature's own values, one per datum (a tensor, array or list)."""
        try:
            if self.per_datum:
                col = dataset.column(self.column)
                return [self.fn(item) for item in (col.tolist() if torch.is_tensor(col) else col)]
            return self.fn(dataset)
        except DataError:
            raise
        except Exception as exc:  # a user function failed: say which feature, keep the cause
            raise DataError(f"feature {self.name!r} failed on dataset {dataset.name!r}: "
                            f"{type(exc).__name__}: {exc}") from exc

    def values(self, dataset) -> np.ndarray:
        """One class id per datum: equal ids exactly where the feature values are equal."""
        return class_ids(self.raw_values(dataset), len(dataset), self.name)

    def __str__(self) -> str:
        return self.name

    def to_spec(self) -> Any:
        """How a spec file writes this feature (see `FEATURES`)."""
        kind = FEATURES[self.ref] if self.ref in FEATURES else None
        if kind is None:
            if self.ref and "." in self.ref:
                kind = FEATURES["function"]
            else:
                raise NotSerializable(f"feature {self.name!r} has no import path (a lambda or a local function?); "
                                      "define it as a module-level function so a spec can name it.")
        return kind.to_spec(self)


class NotSerializable(ValueError):
    """A Python value that a spec file cannot express (a lambda, a local function)."""


def class_ids(values: Any, n: int, name: str) -> np.ndarray:
    """Map per-datum values (tensor, array or list of hashables) to dense int ids."""
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.ndim == 0 or len(values) != n:
            got = "a single value" if values.ndim == 0 else f"{len(values)} values"
            raise DataError(f"feature {name!r} returned {got} for {n} data; it must return one per datum.")
        flat = values.reshape(n, -1)
        _, ids = np.unique(flat, axis=0, return_inverse=True)
        return ids.reshape(n).astype(np.int64)
    try:
        if isinstance(values, (str, bytes, dict)):
            raise TypeError
        values = list(values)
    except TypeError:
        raise DataError(f"feature {name!r} returned {type(values).__name__} {_short(values)}; it must return one "
                        f"value per datum (a list, array or tensor of {n}).") from None
    if len(values) != n:
        raise DataError(f"feature {name!r} returned {len(values)} values for {n} data; it must return one per datum.")
    table: dict = {}
    try:
        return np.array([table.setdefault(_hashable(v), len(table)) for v in values], dtype=np.int64)
    except TypeError as exc:
        raise DataError(f"feature {name!r} returned unhashable values ({exc}); return numbers, strings or tuples.") from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, np.ndarray)) or torch.is_tensor(v):
        return tuple(np.asarray(v).reshape(-1).tolist())
    return v


def describe_value(dataset, feature: Feature, index: int) -> str:
    """The feature's value on one datum, for error messages."""
    try:
        if feature.per_datum:
            col = dataset.column(feature.column)
            return repr(feature.fn(col[index]))
        out = feature.fn(dataset.take([index]))
        out = out.tolist() if hasattr(out, "tolist") else list(out)
        return repr(out[0])
    except Exception:  # description only; the caller's error says what matters
        return "<unavailable>"


# --- built-ins, registered once ------------------------------------------------------------

@dataclass(frozen=True)
class BuiltinFeature:
    """A registered feature constructor and how spec files write it: a bare name (`label`) when it
    takes no argument, else `{name: ARG}` with ARG of type `arg` (int, str, or a list of ints)."""

    make: Callable[..., Feature]
    arg: Optional[type] = None
    doc: str = ""

    def from_spec(self, spec: SpecValue) -> Feature:
        if self.arg is None:
            if not isinstance(spec.value, str):
                raise spec.error(f"feature {self.make.__name__!r} takes no argument; write it as a bare name.")
            return self.make()
        name = self.make.__name__
        if not isinstance(spec.value, dict) or len(spec.value) != 1:
            raise spec.error(f"write this feature as {{{name}: {_ARG_HINT[self.arg]}}}.")
        value = spec.value[name]
        ok = (all(isinstance(v, int) and not isinstance(v, bool) for v in value) if self.arg is list and
              isinstance(value, list) else isinstance(value, self.arg) and not isinstance(value, bool))
        if not ok:
            raise spec.error(f"{name} takes {_ARG_HINT[self.arg]}; got {value!r}.", name)
        return self.make(value)

    def to_spec(self, feature: Feature) -> Any:
        if self.arg is None:
            return feature.ref
        arg = feature.args[0]
        return {feature.ref: list(arg) if self.arg is list else arg}


_ARG_HINT = {int: "a position (an integer)", str: "a column name", list: "a list of positions"}

FEATURES: Registry = Registry("feature")


def builtin(name: str, arg: Optional[type] = None):
    """Register a feature constructor under `name` (the decorated function builds the Feature)."""
    def add(fn: Callable[..., Feature]) -> Callable[..., Feature]:
        FEATURES.register(name, BuiltinFeature(fn, arg, (fn.__doc__ or "").strip()))
        return fn
    return add


def _inputs(ds):
    return ds.inputs


def _tokens(ds, positions, name: str):
    """ds.inputs[:, positions] (an int or a list), with positions checked against the sequence length (not
    torch's IndexError)."""
    inputs = ds.inputs
    if inputs.dim() < 2:
        raise DataError(f"feature {name}: the inputs have no positions (shape {tuple(inputs.shape)}).")
    n_pos = inputs.shape[1]
    for p in ([positions] if isinstance(positions, int) else positions):
        if not -n_pos <= p < n_pos:
            raise DataError(f"feature {name}: position {p} is out of range for sequences of length {n_pos} "
                            f"(valid: 0..{n_pos - 1}, or -{n_pos}..-1 from the end).")
    return inputs[:, positions]


@builtin("token_at", int)
def token_at(pos: int) -> Feature:
    """The input token at one position."""
    if not isinstance(pos, int) or isinstance(pos, bool):
        raise HypothesisError(f"token_at takes a position (an integer); got {type(pos).__name__} {pos!r}.")
    name = f"token_at({pos})"
    return Feature(name, lambda ds: _tokens(ds, pos, name), ref="token_at", args=(pos,))


@builtin("tokens_at", list)
def tokens_at(positions: Sequence[int]) -> Feature:
    """The input tokens at several positions (agree on all of them)."""
    if isinstance(positions, (str, bytes)) or not all(isinstance(p, int) and not isinstance(p, bool)
                                                      for p in positions):
        raise HypothesisError(f"tokens_at takes a list of positions (integers); got {positions!r}.")
    positions = tuple(int(p) for p in positions)
    if not positions:
        raise HypothesisError("tokens_at needs at least one position.")
    name = f"tokens_at({list(positions)})"
    return Feature(name, lambda ds: _tokens(ds, list(positions), name), ref="tokens_at", args=(positions,))


@builtin("label")
def label() -> Feature:
    """The datum's label."""
    return Feature("label", lambda ds: ds.column("labels"), ref="label")


@builtin("identity")
def identity() -> Feature:
    """The whole input: injective on distinct inputs, so it behaves like `exact`."""
    return Feature("identity", _inputs, ref="identity")


@builtin("constant")
def constant() -> Feature:
    """The same value on every datum: behaves like `unconditional`."""
    return Feature("constant", lambda ds: np.zeros(len(ds), dtype=np.int64), ref="constant")


@builtin("column", str)
def column(name: str) -> Feature:
    """A dataset column (labels, a field, ...) used as the feature value."""
    return Feature(f"column({name!r})", lambda ds: ds.column(name), ref="column", args=(name,))


def from_batch(fn: Callable, name: Optional[str] = None, ref: Optional[str] = None, args: Sequence = ()) -> Feature:
    """A vectorised feature: `fn(dataset, *args)` returns one value per datum."""
    args = tuple(args)
    return Feature(name or _default_name(fn, args), _with_args(fn, args), ref=ref or _import_path(fn), args=args)


def from_datum(fn: Callable, column: str = "raw", name: Optional[str] = None, ref: Optional[str] = None,
               args: Sequence = ()) -> Feature:
    """A per-datum feature: `fn(item, *args)` for each entry of a column (default: raw)."""
    args = tuple(args)
    return Feature(name or _default_name(fn, args), _with_args(fn, args), per_datum=True, column=column,
                   ref=ref or _import_path(fn), args=args)


def _default_name(fn: Callable, args: tuple) -> str:
    base = getattr(fn, "__name__", "feature")
    return f"{base}({', '.join(map(repr, args))})" if args else base


@dataclass(frozen=True)
class _WithArgs:
    """fn with trailing arguments bound (a picklable, comparable partial)."""

    fn: Callable
    args: tuple

    def __call__(self, x):
        return self.fn(x, *self.args)


def _with_args(fn: Callable, args: tuple) -> Callable:
    return _WithArgs(fn, args) if args else fn


class FunctionFeature:
    """`{function: package.module.fn, per: datum|batch, column: raw, name: ..., args: [...]}`: a user's function."""

    doc = "a function named by import path: per datum (one entry of a column) or per batch (the dataset)"
    KEYS = ("function", "per", "column", "name", "args")

    @staticmethod
    def from_spec(spec: SpecValue) -> Feature:
        spec.mapping(FunctionFeature.KEYS, "a function feature")
        fn = callable_object(spec, "function", what="feature function")
        per = spec.get("per", "datum")
        if per not in ("datum", "batch"):
            raise spec.error("per must be 'datum' (fn takes one datum) or 'batch' (fn takes the dataset).", "per")
        args = spec.typed("args", list, "a list of arguments passed after the datum", [])
        if not all(isinstance(a, (int, float, str)) and not isinstance(a, bool) for a in args):
            raise spec.error("args must be numbers or strings.", "args")
        name = spec.typed("name", str, "a string", None) or _default_name(fn, tuple(args))
        path = spec.value["function"]
        if per == "datum":
            return from_datum(fn, column=spec.typed("column", str, "a column name", "raw"), name=name, ref=path,
                              args=args)
        return from_batch(fn, name=name, ref=path, args=args)

    @staticmethod
    def to_spec(f: Feature) -> Any:
        out = {"function": f.ref, "per": "datum" if f.per_datum else "batch"}
        if f.per_datum and f.column != "raw":
            out["column"] = f.column
        base = f.ref.rsplit(".", 1)[-1]
        if f.name != base and f.name != f"{base}({', '.join(map(repr, f.args))})":
            out["name"] = f.name
        if f.args:
            out["args"] = list(f.args)
        return out


FEATURES.register("function", FunctionFeature)


def _import_path(fn: Callable) -> Optional[str]:
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if mod and qual and "<" not in qual:
        return f"{mod}.{qual}"
    return None
