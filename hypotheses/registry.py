"""Kinds and their registries: the one table of each sort of thing a spec file can name.

A *kind* is a class (or a constructor) that carries its own behaviour: a
sampler draws for itself, a loss names its default distance, a feature knows
how to compute itself. Each sort has one `Registry`, and everything that lists
or parses kinds (the spec reader and writer, the command line, the docs) reads
that registry, so adding a kind is one class and one registration line
(docs/contributing.md).

Kinds read themselves from spec files through `SpecValue`, which knows where
in the document the value sits, so their errors carry the spec key
(`SpecValueError.key`) and the spec layer can point at the line.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

from scrub.errors import ScrubError, SpecValueError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Named kinds of one sort (samplers, features, losses, distances, ...), in registration order."""

    def __init__(self, sort: str, error: type[ScrubError] = SpecValueError):
        self.sort = sort
        self.error = error
        self._kinds: dict[str, T] = {}

    def register(self, name: str, kind: Optional[T] = None):
        """Register `kind` under `name`; without `kind`, a decorator. Returns the kind."""
        def add(k: T) -> T:
            if name in self._kinds:
                raise ScrubError(f"a {self.sort} named {name!r} is already registered; pick another name.")
            self._kinds[name] = k
            if isinstance(k, type):
                k.spec_name = name  # the name spec files use for this kind
            return k
        return add if kind is None else add(kind)

    def __getitem__(self, name: str) -> T:
        if name not in self._kinds:
            raise self.error(f"unknown {self.sort} {name!r}.{did_you_mean(name, self._kinds)} "
                             f"Valid: {', '.join(self._kinds)}.")
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def items(self):
        return self._kinds.items()

    def parse(self, spec: "SpecValue"):
        """Read one kind from a spec value: a bare name (`exact`), or a mapping whose one registered key
        names the kind (`{agree: ..., if_empty: ...}`); the kind's `from_spec` reads the rest."""
        value = spec.value
        if isinstance(value, str):
            if value not in self._kinds:
                raise spec.error(f"unknown {self.sort} {value!r}.{did_you_mean(value, self._kinds)} "
                                 f"Valid: {', '.join(self._kinds)}.")
            return self._kinds[value].from_spec(spec)
        if isinstance(value, dict):
            found = [k for k in value if k in self._kinds]
            # a kind's own keys (KEYS) are settings, not kinds: `{function: f, column: raw}` is one feature
            found = [k for k in found if not any(k in getattr(self._kinds[o], "KEYS", ()) for o in found if o != k)]
            if len(found) == 1:
                return self._kinds[found[0]].from_spec(spec)
            if found:
                raise spec.error(f"give one {self.sort} here, not {len(found)} ({', '.join(found)}).")
            unknown = next(iter(value), None)
            hint = did_you_mean(str(unknown), self._kinds) if unknown is not None else ""
            raise spec.error(f"unknown {self.sort} {value!r}.{hint} Valid: {', '.join(self._kinds)}.")
        raise spec.error(f"expected a {self.sort} (a name, or a mapping naming one of {', '.join(self._kinds)}); "
                         f"got {type(value).__name__} {value!r}.")


class SpecValue:
    """A value read from a spec file with its key path; kinds parse themselves from it.

    `error(...)` makes a SpecValueError whose key is the full path, so the spec
    layer can name the file and line; `at(...)` is a value further inside."""

    def __init__(self, value: Any, key: tuple = ()):
        self.value, self.key = value, tuple(key)

    def at(self, *sub) -> "SpecValue":
        value = self.value
        for part in sub:
            value = value[part]
        return SpecValue(value, self.key + sub)

    def get(self, name: str, default: Any = None) -> Any:
        return self.value.get(name, default) if isinstance(self.value, dict) else default

    def error(self, message: str, *sub) -> SpecValueError:
        return SpecValueError(message, key=self.key + sub)

    def mapping(self, allowed: tuple[str, ...], what: str) -> dict:
        """The value as a mapping with only `allowed` keys (an error names the first stray key)."""
        if not isinstance(self.value, dict):
            raise self.error(f"{what} must be a mapping; got {type(self.value).__name__} {self.value!r}.")
        for k in self.value:
            if k not in allowed:
                raise self.error(f"unknown key {k!r} in {what}.{did_you_mean(str(k), allowed)} "
                                 f"Valid: {', '.join(allowed)}.", k)
        return self.value

    def typed(self, name: str, typ, what: str, default: Any = None) -> Any:
        """`value[name]` checked against `typ` (bools are not numbers here)."""
        if not isinstance(self.value, dict) or name not in self.value:
            return default
        v = self.value[name]
        if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
            raise self.error(f"{name} must be {what}; got {type(v).__name__} {v!r}.", name)
        return v

    def import_object(self, *sub, what: str = "object") -> Any:
        """The Python object named by the import path at `sub` (`package.module.name`)."""
        where = self.at(*sub)
        try:
            return import_object(where.value)
        except (ValueError, ImportError) as exc:
            raise where.error(f"cannot import {what} {where.value!r}: {exc}") from None


def import_object(path: str) -> Any:
    """Import a Python object by its dotted path: the only way a spec names code.

    No string from a spec is ever evaluated; `module.sub.name` is resolved with
    importlib and getattr."""
    if not isinstance(path, str) or not all(p.isidentifier() for p in path.split(".")) or "." not in path:
        raise ValueError(f"{path!r} is not an import path like 'package.module.function'.")
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not module_name.startswith(exc.name) and exc.name != module_name:
                raise ValueError(f"importing {module_name!r} failed: it needs module {exc.name!r}.") from None
            continue
        for i, attr in enumerate(parts[cut:]):
            if not hasattr(obj, attr):
                names = [n for n in dir(obj) if not n.startswith("_")]
                raise ValueError(f"{'.'.join(parts[:cut + i])!r} has no attribute {attr!r}." + did_you_mean(attr, names))
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"no module found for {path!r}; is the package installed, on PYTHONPATH, or beside the spec file?")


def callable_object(spec: SpecValue, *sub, what: str = "function") -> Callable:
    fn = spec.import_object(*sub, what=what)
    if not callable(fn):
        raise spec.error(f"{spec.at(*sub).value!r} is not callable.", *sub)
    return fn
