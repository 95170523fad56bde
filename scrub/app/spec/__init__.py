"""Spec files: hypotheses with their model, data, loss and verdict rule, in YAML (docs/spec-format.md).

Names are imported on first use: reading a file and its YAML (`yamlpos`) needs
neither torch nor the engine, so `scrub validate` reports a syntax error
without loading them.
"""

from __future__ import annotations

import importlib
from typing import Any

from scrub.app.spec.yamlpos import SpecError

_LAZY = {
    "hypothesis_to_dict": "scrub.app.spec.hypothesis_spec",
    **{name: "scrub.app.spec.run_spec" for name in ("Prepared", "RunSpec", "load_spec", "parse_spec", "prepare",
                                                   "spec_dict", "to_yaml")},
}

__all__ = ["RunSpec", "Prepared", "SpecError", "load_spec", "parse_spec", "prepare", "spec_dict", "to_yaml",
           "hypothesis_to_dict"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scrub.app.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
