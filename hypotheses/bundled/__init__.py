"""Hypotheses about the bundled models, as Python builders (spec files live in hypotheses/specs/)."""
