"""Spec files: hypotheses with their model, data, loss and verdict rule, in YAML (docs/spec-format.md)."""

from scrub.app.spec.hypothesis_spec import hypothesis_to_dict
from scrub.app.spec.run_spec import Prepared, RunSpec, load_spec, parse_spec, prepare, spec_dict, to_yaml
from scrub.app.spec.yamlpos import SpecError

__all__ = ["RunSpec", "Prepared", "SpecError", "load_spec", "parse_spec", "prepare", "spec_dict", "to_yaml",
           "hypothesis_to_dict"]
