"""Typed errors, shared by every layer. Every error says what failed, where, and how to fix it.

One base class so callers (and the CLI) can catch every toolkit error at once;
a few subclasses so tests and scripts can tell bad input from engine faults.

Errors carry structure beside their message: the interpretation `node` at
fault and which of its fields (`field`: "name", "paths", "sampler",
"other_inputs", "policy", "children"), or a spec `key` path for a value read
from a spec file. The spec layer turns these into file and line without ever
reading the message text.

This module imports nothing of ours (and nothing heavy): it is the floor every
layer stands on (docs/architecture.md).
"""

from __future__ import annotations

from typing import Iterable, Optional


class ScrubError(Exception):
    """Base class of every error the toolkit raises on purpose.

    node: the interpretation node at fault; field: which of its fields;
    duplicate: the node's name is used twice (the second use is the fault);
    key: a key path into a spec document (relative to where the value was read)."""

    def __init__(self, message: str = "", *, node: Optional[str] = None, field: Optional[str] = None,
                 key: Optional[tuple] = None, duplicate: bool = False):
        super().__init__(message)
        self.node, self.field, self.key, self.duplicate = node, field, key, duplicate

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


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


class DeviceError(ScrubError, ValueError):
    """A device name that is unknown, or names hardware this machine does not have."""


class SpecValueError(ScrubError, ValueError):
    """A value in a spec file is invalid; `key` says where, relative to the value's own location."""


class ScrubWarning(UserWarning):
    """Something that runs but may not mean what was intended (e.g. a feature that is constant over the
    pool); evaluations also record it beside the verdict."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ' did you mean ...?' suffix listing close matches, or '' if none."""
    import difflib  # here, not at the top: importing the floor of every layer stays instant

    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
