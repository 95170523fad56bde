"""scrub: test interpretability hypotheses by causal scrubbing.

    import scrub
    from hypotheses import Hypothesis, Node
    result = scrub.run(model, hypothesis, data, seed=0)

The layout follows the pipeline: `scrub.adapters` (models as sites),
`hypotheses` (the language), `scrub.compile` (hypothesis -> plan),
`scrub.engine` (sampling and execution), `metrics` (verdicts).
"""

from scrub.errors import (AdapterError, DataError, HypothesisError, InterventionError, MetricError, SamplingError,
                          ScrubError, SiteError)
from scrub.data import Dataset
from scrub.graph import ModelGraph, Site
from scrub.adapters import Adapter, HookLayout, adapt, additive, list_sites
from scrub.models.transformer import ScrubTransformer, TransformerConfig, load_checkpoint, save_checkpoint
from scrub.engine.run import Compiled, compile, compile_many, run, run_compiled, run_many
from scrub.engine.result import ScrubResult

__all__ = [
    "run", "run_many", "compile", "compile_many", "run_compiled", "Compiled", "ScrubResult", "Dataset",
    "adapt", "additive", "list_sites", "Adapter", "HookLayout", "ModelGraph", "Site",
    "ScrubTransformer", "TransformerConfig", "load_checkpoint", "save_checkpoint",
    "ScrubError", "HypothesisError", "SiteError", "SamplingError", "DataError", "AdapterError",
    "InterventionError", "MetricError",
]
