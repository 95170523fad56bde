"""scrub: test interpretability hypotheses by causal scrubbing.

    import scrub
    from hypotheses import Hypothesis, Node
    result = scrub.run(model, hypothesis, data, seed=0)

The layers, each using only those below it (docs/architecture.md):
`hypotheses` (the language) -> `scrub` (adapters, compile, engine) ->
`metrics` (measures, statistics, verdicts) -> `scrub.app` (spec files,
command line, reports, W&B). `scrub.errors` is the one module every layer
shares.

Names are imported on first use, so `import scrub.errors` (which the language
does) stays cheap and never drags the engine, torch or TransformerLens in.
"""

from __future__ import annotations

import importlib
from typing import Any

from scrub.errors import (AdapterError, DataError, HypothesisError, InterventionError, MetricError, SamplingError,
                          ScrubError, SiteError)

_LAZY = {
    "Dataset": "scrub.data",
    "ModelGraph": "scrub.graph", "Site": "scrub.graph",
    "Adapter": "scrub.adapters", "HookLayout": "scrub.adapters", "adapt": "scrub.adapters",
    "additive": "scrub.adapters", "list_sites": "scrub.adapters",
    "ScrubTransformer": "scrub.models.transformer", "TransformerConfig": "scrub.models.transformer",
    "load_checkpoint": "scrub.models.transformer", "save_checkpoint": "scrub.models.transformer",
    "Compiled": "scrub.engine.run", "compile": "scrub.engine.run", "compile_many": "scrub.engine.run",
    "run": "scrub.engine.run", "run_compiled": "scrub.engine.run", "run_many": "scrub.engine.run",
    "ScrubResult": "scrub.engine.result",
    "load_hf": "scrub.huggingface",
}

__all__ = [
    "run", "run_many", "compile", "compile_many", "run_compiled", "Compiled", "ScrubResult", "Dataset",
    "adapt", "additive", "list_sites", "Adapter", "HookLayout", "ModelGraph", "Site",
    "ScrubTransformer", "TransformerConfig", "load_checkpoint", "save_checkpoint", "load_hf",
    "ScrubError", "HypothesisError", "SiteError", "SamplingError", "DataError", "AdapterError",
    "InterventionError", "MetricError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scrub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
