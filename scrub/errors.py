"""Typed errors. Every error says what failed, where, and how to fix it.

One base class so callers (and the CLI) can catch every toolkit error at once;
a few subclasses so tests and scripts can tell bad input from engine faults.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class ScrubError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class HypothesisError(ScrubError, ValueError):
    """The hypothesis is malformed or does not fit the model."""


class SiteError(HypothesisError):
    """A site name, head index or position does not exist in the model."""


class SamplingError(ScrubError, ValueError):
    """Data could not be drawn as a sampler asks (e.g. an empty agreement class)."""


class DataError(ScrubError, ValueError):
    """The dataset does not have what the model, a feature or a metric needs."""


class AdapterError(ScrubError, ValueError):
    """The model cannot be adapted, or its declared structure does not hold."""


class InterventionError(ScrubError, RuntimeError):
    """A planned intervention did not fire, or fired with the wrong shape."""


class MetricError(ScrubError, ValueError):
    """A metric was given outputs or data it cannot use."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ' did you mean ...?' suffix listing close matches, or '' if none."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
