"""Bundled models and datasets by name, for spec files and the CLI.

A model entry returns something `scrub.adapt` accepts; a dataset entry returns
a Dataset, or (Dataset, reference indices) when the case fixes its reference
data. Heavy imports happen inside the loaders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _induction_model():
    from hypotheses.cases import induction
    return induction.load_model()


def _paren_model():
    from hypotheses.cases import paren
    return paren.load_model()


def _paren_external():
    from hypotheses.cases import paren
    return paren.load_external_model()


PLANTED = ("terms", "terms3", "terms4", "terms-control", "small-extras", "heads", "heads3", "head-mlp",
           "heads-control", "xor-relu", "xor-linear", "sine")
_PLANTED_CACHE: dict = {}  # planted cases train or build once per process; model and data come from one build


def _planted(name: str, index: int = 0):
    def load():
        from hypotheses.cases import planted
        builders = {"terms": planted.cancelling_terms, "heads": planted.cancelling_heads,
                    "terms3": lambda: planted.balanced_terms(3), "terms4": lambda: planted.balanced_terms(4),
                    "terms-control": lambda: planted.balanced_terms(4, cancel=False),
                    "small-extras": planted.small_extras, "heads3": planted.three_heads,
                    "head-mlp": planted.head_and_mlp, "heads-control": planted.unrelated_heads,
                    "xor-relu": lambda: planted.xor_and_linear(True), "xor-linear": lambda: planted.xor_and_linear(False),
                    "sine": planted.sine}
        if name not in _PLANTED_CACHE:
            _PLANTED_CACHE[name] = builders[name]()
        built = _PLANTED_CACHE[name]
        return built[index] if index >= 0 else built
    return load


# Bundled models that are ScrubTransformer checkpoints: their sites can be read from the file's config
# without building the model (`scrub sites induction` then needs no TransformerLens import).
CHECKPOINTS: dict[str, Path] = {"induction": Path(__file__).parent / "induction" / "induction.pt",
                                "paren": Path(__file__).parent / "paren" / "paren.pt"}

MODELS: dict[str, Callable[[], Any]] = {
    "induction": _induction_model,
    "paren": _paren_model,
    "paren-external": _paren_external,
    **{f"planted-{n}": _planted(n, 0) for n in PLANTED},
}


def _induction_data(n: int = 2000, seed: int = 12345):
    from hypotheses.cases import induction
    return induction.make_dataset(n, seed=seed)


def _paren_data(n: int = 2000, seed: int = 0):
    from hypotheses.cases import paren
    return paren.make_dataset(n, seed)


def _paren_file(which: str):
    def load(n: int | None = None):
        from hypotheses.cases import paren
        return paren.load_external_data(which, n=n)
    return load


def _planted_data(name: str):
    def load():
        built = _planted(name, -1)()
        return (built[1], built[2]) if name == "sine" else built[1]
    return load


DATASETS: dict[str, Callable[..., Any]] = {
    "induction": _induction_data,
    "paren": _paren_data,
    "paren-redwood": _paren_file("redwood"),
    "paren-curriculum": _paren_file("curriculum"),
    **{f"planted-{n}": _planted_data(n) for n in PLANTED},
}
