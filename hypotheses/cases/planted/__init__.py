"""Planted circuits whose mechanism is known by construction (`model`), with true and
plausible false hypotheses about them (`hypotheses`, specs in `specs/`)."""

from hypotheses.cases.planted.model import (BalancedTerms, Sine, ThreeTerms, TwoHeads, balanced_terms,
                                            cancelling_heads, cancelling_terms, head_and_mlp, sine, small_extras,
                                            three_heads, unrelated_heads, writer_heads, xor_and_linear, xor_data)

__all__ = ["BalancedTerms", "Sine", "ThreeTerms", "TwoHeads", "balanced_terms", "cancelling_heads",
           "cancelling_terms", "head_and_mlp", "sine", "small_extras", "three_heads", "unrelated_heads",
           "writer_heads", "xor_and_linear", "xor_data"]
