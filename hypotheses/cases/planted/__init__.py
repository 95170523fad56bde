"""Planted circuits whose mechanism is known by construction (`model`), with true and
plausible false hypotheses about them (`hypotheses`, specs in `specs/`)."""

from hypotheses.cases.planted.model import (Sine, ThreeTerms, TwoHeads, cancelling_heads, cancelling_terms, sine,
                                            xor_and_linear, xor_data)

__all__ = ["Sine", "ThreeTerms", "TwoHeads", "cancelling_heads", "cancelling_terms", "sine", "xor_and_linear",
           "xor_data"]
