"""Spec files: round trips with Python hypotheses, and located errors for malformed specs."""

import pathlib
import subprocess
import sys
import textwrap

import pytest

from scrub import ScrubTransformer, TransformerConfig, save_checkpoint
from scrub.app.spec import SpecError, hypothesis_to_dict, load_spec, parse_spec, prepare, spec_dict, to_yaml
from hypotheses.cases.induction import hypotheses as induction
from hypotheses.cases.paren import hypotheses as paren
from hypotheses.cases.planted import hypotheses as planted

ROOT = pathlib.Path(__file__).resolve().parent.parent


def bundled_hypotheses():
    hs = [mk() for mk in induction.ALL] + [mk() for mk in paren.ALL]
    hs += [h for cases, _, _ in planted.cancellation_cases().values() for h, _, _ in cases()]
    hs += [h for h, _, _ in planted.xor_and_linear(True)] + [h for h, _ in planted.sine()]
    return hs


@pytest.mark.parametrize("h", bundled_hypotheses(), ids=lambda h: h.name)
def test_python_hypothesis_round_trips_through_a_spec(h):
    doc = spec_dict(h, model={"bundled": "induction"}, data={"bundled": "induction"}, loss="next_token")
    again = parse_spec(to_yaml(doc), "round-trip.yaml").hypothesis
    assert again == h
    assert hypothesis_to_dict(again) == hypothesis_to_dict(h)


def test_committed_spec_files_match_their_python_builders():
    out = subprocess.run([sys.executable, "scripts/export_specs.py", "--check"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def tiny_spec(tmp_path):
    """A checkpoint of a tiny model next to a spec template that names it."""
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_vocab=6, n_ctx=8, d_mlp=16, seed=0)
    save_checkpoint(ScrubTransformer(cfg), tmp_path / "tiny.pt")

    def write(hypothesis_yaml: str, extra: str = "", data: str = "{function: spec_helpers.tiny_data}") -> pathlib.Path:
        text = textwrap.dedent(f"""\
            name: tiny
            model: {{checkpoint: tiny.pt}}
            data: {data}
            loss: {{next_token: {{mask: null}}}}
            seeds: [0]
            """) + extra + "hypothesis:\n" + textwrap.indent(textwrap.dedent(hypothesis_yaml), "  ")
        path = tmp_path / "spec.yaml"
        path.write_text(text)
        return path

    return write


GOOD = """\
name: output
children:
  - name: head
    paths: output <- head.1.0
    children:
      - name: keys
        paths: .k <- head.0.1
        sampler: {agree: {token_at: 2}}
"""


def test_a_good_spec_prepares(tiny_spec):
    prepared = prepare(load_spec(tiny_spec(GOOD)))
    assert len(prepared.data) == 40


MALFORMED = {
    "unknown site": (GOOD.replace("head.0.1", "hed.0.1"), 13, r"unknown site 'hed\.0\.1'.*Did you mean 'head\.0\.1'"),
    "bad head index": (GOOD.replace("head.1.0", "head.1.7"), 10, r"head index 7 is out of range; layer 1 has heads 0\.\.1"),
    "unknown feature": (GOOD.replace("{token_at: 2}", "{token_att: 2}"), 14,
                        r"key 'hypothesis\.children\[0\]\.children\[0\]\.sampler\.agree': unknown feature"),
    "yaml syntax": (GOOD.replace("paths: .k <- head.0.1", "paths: [.k <- head.0.1"), 14, r"YAML syntax error"),
    "wrong type": (GOOD.replace("paths: output <- head.1.0", "paths: 7"), 10, r"paths must be a string or a non-empty list"),
    "non-tree": (GOOD.replace("name: keys", "name: head"), 12, r"two nodes are named 'head'.*DAG, not a tree"),
    "cyclic": ("&root\nname: output\nchildren: [*root]\n", 7, r"alias refers to itself \(a cyclic document\)"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_hypotheses_get_located_one_paragraph_errors(tiny_spec, case):
    body, line, match = MALFORMED[case]
    with pytest.raises(SpecError, match=match) as info:
        prepare(load_spec(tiny_spec(body)))
    err = info.value
    assert err.file.endswith("spec.yaml") and err.line == line, (err.line, str(err))
    assert "\n" not in str(err)  # one paragraph


def test_missing_key(tmp_path):
    path = tmp_path / "missing.yaml"
    path.write_text("model: induction\ndata: induction\nhypothesis: {name: output}\n")
    with pytest.raises(SpecError, match=r"missing required key 'loss'"):
        load_spec(path)


def test_wrong_type(tiny_spec):
    path = tiny_spec(GOOD)
    path.write_text(path.read_text().replace("seeds: [0]", "seeds: two"))
    with pytest.raises(SpecError, match=r"line 5, key 'seeds': seeds must be a count or a non-empty list"):
        load_spec(path)


def test_unknown_top_level_key_lists_the_valid_ones(tiny_spec):
    with pytest.raises(SpecError, match=r"unknown key 'seed'\. Did you mean 'seeds'.*Valid keys: name, description"):
        load_spec(tiny_spec(GOOD, extra="seed: 3\n"))


def test_empty_agreement_class_is_caught_before_running(tiny_spec):
    path = tiny_spec(GOOD.replace("{token_at: 2}", "{token_at: 1}"), data="{function: spec_helpers.pool_and_outside}")
    # located at the node's sampler (the structured error names the node and the field)
    with pytest.raises(SpecError, match=r"line 14, key 'hypothesis\.children\[0\]\.children\[0\]\.sampler'.*no datum in the "
                                        r"sampling pool agrees on feature 'token_at\(1\)' with value 5"):
        prepare(load_spec(path))


def test_specs_never_construct_python_objects_or_evaluate_strings(tiny_spec, tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match=r"unsupported value"):
        load_spec(path)
    evil = GOOD.replace("{token_at: 2}", "{function: \"__import__('os').system\"}")
    with pytest.raises(SpecError, match=r"cannot import feature function .* is not an import path"):
        load_spec(tiny_spec(evil))


def test_unknown_bundled_names_list_the_options(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model: inductoin\ndata: induction\nloss: next_token\nhypothesis: {name: output}\n")
    with pytest.raises(SpecError, match=r"line 1, key 'model.bundled': no bundled model 'inductoin'\. Did you mean "
                                        r"'induction'"):
        load_spec(path)
