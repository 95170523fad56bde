"""A corpus of careless and hostile inputs: each is one valid spec (or call) with one thing changed, and each
gets exit 2 and one paragraph naming the culprit (file, line and key where there is one), never a traceback,
never raw torch text, and never a silently wrong number. Classes follow issue 17 (and 11): unbounded work
from a small file, degenerate and out-of-range values, files scrub must not trust, and Python API misuse."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from click.testing import CliRunner

import scrub
from hypotheses import Hypothesis, Node, agree, from_batch, token_at, tokens_at
from metrics import MSELoss, NextTokenLoss, VerdictRule, evaluate
from scrub import load_checkpoint, save_checkpoint
from scrub.app.cli.main import cli
from scrub.errors import ScrubError, ScrubWarning

from conftest import tiny_tokens, tiny_transformer
from spec_helpers import tiny_spec_text, write_tiny_checkpoint

ROOT = pathlib.Path(__file__).resolve().parent.parent

BASE = tiny_spec_text("tiny", seeds="[0]", keys_sampler="{agree: {token_at: 2}}")
SAMPLER_LINE, DATA_LINE, MODEL_LINE, LOSS_LINE, SEEDS_LINE = 14, 3, 2, 4, 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny checkpoint (and a NaN-weighted one) beside which the corpus' specs are written."""
    root = tmp_path_factory.mktemp("hostile")
    model = load_checkpoint(write_tiny_checkpoint(root))
    with torch.no_grad():
        model.unembed.W_U[:, 3] = float("nan")
    save_checkpoint(model, root / "nan.pt")
    return root


def validate(path: pathlib.Path, *extra):
    return CliRunner().invoke(cli, ["validate", str(path), *map(str, extra)], catch_exceptions=False)


def write(folder: pathlib.Path, text: str, name: str = "case.yaml") -> pathlib.Path:
    path = folder / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return path


def sub(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


def extra(text: str) -> str:
    return BASE + text


def data(value: str) -> str:
    return sub("{function: spec_helpers.tiny_data}", value)


def feature(value: str) -> str:
    return sub("{agree: {token_at: 2}}", value)


def fn_feature(name: str, per: str = "batch") -> str:
    column = ", column: inputs" if per == "datum" else ""
    return feature(f"{{agree: {{function: spec_helpers.{name}, per: {per}{column}}}}}")


def deep_hypothesis(levels: int) -> dict:
    """A chain of nodes `levels` deep (each level nests a mapping in a list: two YAML levels)."""
    node: dict = {"name": f"n{levels}", "paths": ".k"}
    for i in range(levels - 1, 0, -1):
        node = {"name": f"n{i}", "paths": ".k" if i > 1 else "output <- head.1.0", "children": [node]}
    return {"name": "output", "children": [node]}


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
MAP_LAUGHS = "a: &a {p: x, q: x, r: x, s: x}\n" + "".join(
    f"{c}: &{c} {{p: *{p}, q: *{p}, r: *{p}, s: *{p}, t: *{p}, u: *{p}}}\n" for p, c in zip("abcdefghijk", "bcdefghijkl"))

# (id, spec text, expected message (regex), line or None)
CORPUS = [
    # --- 1. unbounded work from a small file
    ("laughs-lists", LAUGHS, r"expands to more than 100,000 values.*billion laughs", None),
    ("laughs-mappings", MAP_LAUGHS, r"expands to more than 100,000 values", None),
    ("laughs-in-a-spec", BASE + "description: &d [" + ", ".join(["lol"] * 50) + "]\n"
     + "".join(f"d{i}: &d{i} [{', '.join(['*d' if i == 0 else f'*d{i - 1}'] * 50)}]\n" for i in range(4)),
     r"expands to more than 100,000 values", None),
    ("deep-flow-lists", "a: " + "[" * 1000 + "]" * 1000 + "\n", r"nests lists and mappings more than 100 deep", 1),
    ("deep-flow-maps", "a: " + "{b: " * 500 + "1" + "}" * 500 + "\n", r"more than 100 deep", 1),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n", r"more than 100 deep",
     None),
    ("deep-hypothesis", BASE.split("hypothesis:")[0] + yaml.safe_dump({"hypothesis": deep_hypothesis(60)}),
     r"more than 100 deep", None),
    ("huge-file", BASE + "# " + "x" * (2 * 1024 * 1024) + "\n", r"larger than 2,097,152 bytes", None),
    ("huge-seed-count", sub("seeds: [0]", "seeds: 100000000"), r"seeds: give a count between 1 and 1,000", SEEDS_LINE),
    ("huge-seed-list", sub("seeds: [0]", "seeds: [" + ", ".join(map(str, range(1001))) + "]"), r"at most 1,000",
     SEEDS_LINE),
    ("huge-reference", extra("reference: 100000000000\n"), r"reference must be between 1 and 10,000,000", 15),
    # --- 3. degenerate and out-of-range values
    ("seeds-float", sub("seeds: [0]", "seeds: [0.5]"), r"seeds must be integers; got float 0\.5", SEEDS_LINE),
    ("seeds-float-count", sub("seeds: [0]", "seeds: 2.0"), r"seeds must be a count or a non-empty list", SEEDS_LINE),
    ("seeds-repeated", sub("seeds: [0]", "seeds: [0, 1, 0]"), r"seed 0 is listed twice", SEEDS_LINE),
    ("seeds-empty", sub("seeds: [0]", "seeds: []"), r"non-empty list", SEEDS_LINE),
    ("seeds-zero", sub("seeds: [0]", "seeds: 0"), r"count between 1 and", SEEDS_LINE),
    ("seeds-bool", sub("seeds: [0]", "seeds: [true]"), r"seeds must be integers", SEEDS_LINE),
    ("seeds-string", sub("seeds: [0]", "seeds: ['0']"), r"seeds must be integers", SEEDS_LINE),
    ("verdict-above-1", extra("verdict: {min_loss_recovered: 1.5}\n"), r"min_loss_recovered=1\.5 is out of range", 15),
    ("verdict-negative", extra("verdict: {max_distance_fraction: -0.1}\n"), r"max_distance_fraction=-0\.1 is out", 15),
    ("verdict-nan", extra("verdict: {min_loss_recovered: .nan}\n"), r"min_loss_recovered=nan is out of range", 15),
    ("verdict-gap", extra("verdict: {min_gap: 3}\n"), r"min_gap=3 is out of range", 15),
    ("verdict-fraction-2", extra("verdict: {max_distance_fraction: 2}\n"), r"out of range", 15),
    ("batch-zero", extra("batch_size: 0\n"), r"batch_size must be at least 1; got 0", 15),
    ("batch-negative", extra("batch_size: -4\n"), r"batch_size must be at least 1; got -4", 15),
    ("batch-float", extra("batch_size: 1.5\n"), r"expected an integer", 15),
    ("reference-zero", extra("reference: 0\n"), r"reference must be between 1", 15),
    ("reference-negative", extra("reference: -3\n"), r"reference must be between 1", 15),
    ("token-beyond-vocab", data("{function: spec_helpers.big_tokens}"),
     r"token ids range 2\.\.99 but the model's vocabulary has 6 tokens.*datum 4", DATA_LINE),
    ("sequence-beyond-context", data("{function: spec_helpers.long_sequences}"),
     r"sequences have 12 positions but this transformer reads at most 8", DATA_LINE),
    ("token-position-99", feature("{agree: {token_at: 99}}"),
     r"position 99 is out of range for sequences of length 4", SAMPLER_LINE),
    ("tokens-position-negative", feature("{agree: {tokens_at: [0, -9]}}"), r"position -9 is out of range",
     SAMPLER_LINE),
    ("nan-labels", data("{function: spec_helpers.nan_labels}"),
     r"column 'labels' holds NaN or infinite values in 2 of 40 rows \(rows 3, 7\)", DATA_LINE),
    ("nan-model", sub("tiny.pt", "nan.pt"), r"the model's own outputs are NaN or infinite", MODEL_LINE),
    ("mask-typo", sub("{next_token: {mask: null}}", "{next_token: {mask: loss_msk}}"),
     r"the loss .* has no column 'loss_msk'", LOSS_LINE),
    ("labels-missing", sub("{next_token: {mask: null}}", "{classification: {position: 0}}"),
     r"has no 'labels' column", LOSS_LINE),
    ("metric-needs-labels", extra("metrics: [{accuracy: {position: 0}}]\n"), r"metric 'accuracy@0'.*'labels'", 15),
    ("metric-name-taken", extra("metrics: [{function: spec_helpers.first_token, name: kl}]\n"),
     r"metric name 'kl' is already a distance reported by default", 15),
    ("column-feature-missing", feature("{agree: {column: nope}}"), r"node 'keys'.*has no column 'nope'",
     SAMPLER_LINE),
    # --- 4. files scrub must not trust, and functions that misbehave
    ("feature-returns-none", fn_feature("nothing_batch"), r"feature 'nothing_batch' returned NoneType None",
     SAMPLER_LINE),
    ("feature-wrong-length", fn_feature("three_values"), r"feature 'three_values' returned 3 values for 40 data",
     SAMPLER_LINE),
    ("feature-unhashable", fn_feature("unhashable", "datum"), r"feature 'unhashable' returned unhashable values",
     SAMPLER_LINE),
    ("feature-raises", fn_feature("raises", "datum"), r"feature 'raises' failed .*ValueError: cannot read",
     SAMPLER_LINE),
    ("data-not-a-dataset", data("{function: spec_helpers.not_a_dataset}"), r"returned a dict, not a scrub\.Dataset",
     DATA_LINE),
    ("feature-not-importable", feature("{agree: {function: spec_helpers.no_such_fn}}"),
     r"has no attribute 'no_such_fn'", SAMPLER_LINE),
    ("lone-surrogate", sub('name: tiny', 'name: "a\\ud83d"'), r"invalid character .*half of a UTF-16 pair", 1),
    ("python-tag", sub("model: {checkpoint: tiny.pt}", "model: !!python/object/apply:os.system ['true']"),
     r"unsupported value", MODEL_LINE),
    ("evaluated-string", feature("{agree: {function: \"__import__('os').system\"}}"), r"is not an import path",
     SAMPLER_LINE),
]

FILES = [
    # (id, file name, bytes, data or model entry, expected, line)
    ("pickled-data", "data.pt", None, "data: {file: data.pt}",
     r"data file '.*data\.pt' holds pickled Python objects, which scrub never loads", DATA_LINE),
    ("pickled-checkpoint", "evil.pt", None, "model: {checkpoint: evil.pt}",
     r"checkpoint '.*evil\.pt' holds pickled Python objects", MODEL_LINE),
    ("raw-pickle-data", "raw.pt", pickle.dumps({"inputs": [[1, 2]]}), "data: {file: raw.pt}",
     r"holds pickled Python objects", DATA_LINE),
    ("truncated-checkpoint", "cut.pt", "TRUNCATE", "model: {checkpoint: cut.pt}",
     r"checkpoint '.*cut\.pt' is not a readable torch file", MODEL_LINE),
    ("text-as-checkpoint", "text.pt", b"hello, I am not a checkpoint", "model: {checkpoint: text.pt}",
     r"is not a readable torch file", MODEL_LINE),
    ("empty-checkpoint", "empty.pt", b"", "model: {checkpoint: empty.pt}", r"is not a readable torch file", MODEL_LINE),
    ("missing-checkpoint", None, None, "model: {checkpoint: missing.pt}", r"checkpoint '.*missing\.pt' does not exist",
     MODEL_LINE),
    ("json-list", "list.json", b"[[2, 3, 4, 5], [2, 3, 4, 5]]", "data: {file: list.json}",
     r"list\.json must hold a mapping with 'inputs'.*it holds a list of 2 items", DATA_LINE),
    ("json-invalid", "bad.json", b'{"inputs": [[2, 3], ', "data: {file: bad.json}", r"bad\.json is not valid JSON",
     DATA_LINE),
    ("json-ragged", "ragged.json", b'{"inputs": [[2, 3], [2]]}', "data: {file: ragged.json}",
     r"'inputs' must be a list of numbers", DATA_LINE),
    ("json-strings", "strings.json", b'{"inputs": [["a", "b"]]}', "data: {file: strings.json}",
     r"'inputs' must be a list of numbers", DATA_LINE),
    ("json-nan-labels", "nan.json", b'{"inputs": [[2, 3, 4, 5], [3, 2, 4, 5]], "labels": [NaN, 1.0]}',
     "data: {file: nan.json}", r"column 'labels' holds NaN or infinite values in 1 of 2 rows", DATA_LINE),
    ("data-latin1", "latin.json", '{"inputs": [[2, 3]], "name": "caf\xe9"}'.encode("latin-1"),
     "data: {file: latin.json}", r"latin\.json is not UTF-8", DATA_LINE),
]


class Evil:
    """Pickled into a file, it would run code on load (it never does: weights_only refuses it)."""

    def __reduce__(self):
        return (os.system, ("echo pwned > PWNED",))


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_spec_gets_exit_2_and_a_located_message(folder, case):
    ident, text, expected, line = case
    result = validate(write(folder, text, f"{ident}.yaml"))
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "torch" not in output.replace("torch.save", "")
    assert re.search(expected, output), output
    if line is not None:
        assert re.search(f"line {line}[,:]", output), output


@pytest.mark.parametrize("case", FILES, ids=[c[0] for c in FILES])
def test_untrusted_files_are_refused_with_their_name_and_key(folder, case, monkeypatch):
    ident, name, content, entry, expected, line = case
    monkeypatch.chdir(folder)
    if name is not None:
        if content is None:
            torch.save({"inputs": Evil(), "config": Evil(), "state_dict": {}}, folder / name)
        elif content == "TRUNCATE":
            (folder / name).write_bytes((folder / "tiny.pt").read_bytes()[:200])
        else:
            (folder / name).write_bytes(content)
    key = entry.split(":")[0]
    text = BASE.replace(next(x for x in BASE.splitlines() if x.startswith(key + ":")), entry)
    result = validate(write(folder, text, f"{ident}.yaml"))
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert re.search(expected, output), output
    assert f"line {line}," in output and f"key '{key}" in output
    assert "weights_only" not in output and "Traceback" not in output
    assert not (folder / "PWNED").exists()  # nothing in a file ever runs


def test_non_utf8_and_binary_specs_name_the_file(folder):
    for ident, raw in [("latin1", BASE.replace("tiny", "t\xefny").encode("latin-1")),
                       ("utf16", BASE.encode("utf-16")), ("binary", bytes(range(256)) * 4)]:
        result = validate(write(folder, raw, f"{ident}.yaml"))
        assert result.exit_code == 2 and f"{ident}.yaml" in result.output, result.output
        assert "not UTF-8 text" in result.output and "UnicodeDecodeError" not in result.output


def test_limits_are_hit_quickly(folder):
    """A small hostile file is refused in well under a second of work (the old converter ran for minutes)."""
    for ident, text in [("laughs", LAUGHS), ("deep", "a: " + "[" * 5000 + "]" * 5000)]:
        from scrub.app.spec.yamlpos import parse_yaml

        start = time.process_time()
        with pytest.raises(ScrubError):
            parse_yaml(text, ident)
        assert time.process_time() - start < 2.0, ident


def test_validate_reports_every_invalid_spec_of_a_glob(folder):
    good = write(folder, BASE, "good.yaml")
    bad = [write(folder, sub("seeds: [0]", "seeds: [0, 0]"), "bad1.yaml"),
           write(folder, "model: [\n", "bad2.yaml"),
           write(folder, feature("{agree: {token_at: 42}}"), "bad3.yaml")]
    result = CliRunner().invoke(cli, ["validate", str(bad[0]), str(good), str(bad[1]), str(bad[2])])
    assert result.exit_code == 2
    for path in bad:
        assert f"{path}, line" in result.output, result.output
    assert f"{good}: ok" in result.output and "3 of 4 spec files invalid." in result.output


# --- degenerate features: a loud, recorded warning ------------------------------------------------

@pytest.mark.parametrize("name,per,what", [("noise", "batch", "takes a different value on each"),
                                           ("nothing", "datum", "takes one value on all")])
def test_degenerate_features_are_warned_and_recorded(folder, name, per, what, tmp_path):
    spec = write(folder, fn_feature(name, per), f"degenerate-{name}.yaml")
    checked = validate(spec)
    assert checked.exit_code == 0 and "warning: node 'keys': feature" in checked.output and what in checked.output
    ran = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path)])
    assert ran.exit_code == 0 and what in ran.output, ran.output
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert any(what in w for w in record["warnings"]) and any(what in f for f in record["verdict"]["flags"])
    assert what in (next(tmp_path.glob("*/report.html")).read_text())


def test_meant_degenerate_builtins_are_not_warned():
    data = scrub.Dataset(tiny_tokens(n=20), name="tiny")
    from hypotheses import constant, identity

    for feature_ in (constant(), identity()):
        h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0", agree(feature_))]))
        assert scrub.compile(tiny_transformer(), h, data).warnings == ((),)
    noisy = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0",
                                                   agree(from_batch(lambda ds: torch.rand(len(ds)), name="r")))]))
    with pytest.warns(ScrubWarning, match="node 'a': feature 'r' takes a different value on each of the 20 data"):
        scrub.compile(tiny_transformer(), noisy, data)


# --- 5. Python API misuse, checked at the boundary ------------------------------------------------

MODEL, DATA = tiny_transformer(), scrub.Dataset(tiny_tokens(n=24), name="tiny")
H = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0")]))
LOSS = NextTokenLoss(mask_field=None)

API = [
    ("node-paths-int", lambda: Node("heads", 3), r"node 'heads': paths must be a path string"),
    ("node-paths-none", lambda: Node("heads", None), r"paths must be a path string"),
    ("node-paths-mixed", lambda: Node("heads", ["output <- head.1.0", 7]), r"paths must be a path string"),
    ("node-children-int", lambda: Node("r", children=5), r"children must be a list of Nodes"),
    ("node-name-int", lambda: Node(3), r"every node needs a non-empty name"),
    ("hypothesis-of-str", lambda: Hypothesis("root"), r"Hypothesis needs a root Node"),
    ("hypothesis-name-int", lambda: Hypothesis(Node("root"), name=3), r"a hypothesis name must be a string"),
    ("seeds-empty", lambda: evaluate(MODEL, H, DATA, LOSS, seeds=()), r"seeds is empty"),
    ("seeds-float", lambda: evaluate(MODEL, H, DATA, LOSS, seeds=(0.5,)), r"seeds must be integers; got float"),
    ("seeds-repeated", lambda: evaluate(MODEL, H, DATA, LOSS, seeds=(1, 1)), r"lists seed 1 more than once"),
    ("seeds-int", lambda: evaluate(MODEL, H, DATA, LOSS, seeds=3), r"give a sequence of seeds"),
    ("seed-float", lambda: scrub.run(MODEL, H, DATA, seed=0.5), r"seed must be integers; got float 0\.5"),
    ("loss-string", lambda: evaluate(MODEL, H, DATA, "next_token"), r"loss='next_token' is a name; pass a loss"),
    ("loss-none", lambda: evaluate(MODEL, H, DATA, None), r"loss=None is not a loss"),
    ("batch-zero", lambda: evaluate(MODEL, H, DATA, LOSS, batch_size=0), r"batch_size=0: give a positive number"),
    ("batch-negative", lambda: scrub.run(MODEL, H, DATA, batch_size=-2), r"batch_size=-2"),
    ("reference-floats", lambda: scrub.run(MODEL, H, DATA, reference=[0.5, 1.5]), r"integer indices"),
    ("reference-bool", lambda: scrub.run(MODEL, H, DATA, reference=True), r"reference=True"),
    ("reference-outside", lambda: scrub.compile(MODEL, H, DATA, reference=[0, 99]), r"within 0\.\.23"),
    ("data-not-dataset", lambda: scrub.compile(MODEL, H, tiny_tokens()), r"expected a scrub\.Dataset"),
    ("hypothesis-list", lambda: evaluate(MODEL, [H], DATA, LOSS), r"expected a Hypothesis, got list"),
    ("agree-string", lambda: agree("token_at"), r"agree\(\) needs a Feature"),
    ("token-at-string", lambda: token_at("3"), r"token_at takes a position \(an integer\); got str"),
    ("tokens-at-string", lambda: tokens_at("35"), r"tokens_at takes a list of positions"),
    ("tokens-at-empty", lambda: tokens_at([]), r"at least one position"),
    ("token-at-range", lambda: scrub.compile(MODEL, Hypothesis(Node("r", children=[
        Node("a", "output <- head.1.0", agree(token_at(9)))])), DATA), r"node 'a' \(sampler\): feature token_at\(9\)"),
    ("verdict-range", lambda: VerdictRule(min_loss_recovered=1.5), r"min_loss_recovered=1\.5 is out of range"),
    ("inf-labels", lambda: evaluate(MODEL, H, scrub.Dataset(tiny_tokens(n=24), labels=torch.full((24,), float("inf")),
                                                            name="inf"), MSELoss()),
     r"column 'labels' holds NaN or infinite values in 24 of 24 rows"),
    ("inf-inputs", lambda: scrub.compile(scrub.additive(torch.nn.Linear(3, 1), {"w": torch.nn.Linear(3, 1)}),
                                         Hypothesis(Node("root")), __import__("spec_helpers").inf_inputs()),
     r"column 'inputs' holds NaN or infinite values in 1 of 20 rows \(rows 5\)"),
    ("device-cuda", lambda: scrub.load_checkpoint(ROOT / "hypotheses/cases/induction/induction.pt", device="cuda"),
     r"no CUDA device here|checkpoint"),
    ("device-gpu", lambda: scrub.load_checkpoint(ROOT / "hypotheses/cases/induction/induction.pt", device="gpu"),
     r"unknown device 'gpu'\. Did you mean 'cuda'\?"),
]


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_api_misuse_is_checked_at_the_boundary(case):
    ident, call, expected = case
    if ident == "device-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ScrubError, match=expected):
        call()


def test_a_model_with_nan_outputs_is_blamed_not_a_metric(folder):
    from scrub.models.transformer import load_checkpoint

    model = load_checkpoint(folder / "nan.pt")
    with pytest.raises(ScrubError, match=r"the model's own outputs are NaN or infinite .*no metric is at fault"):
        evaluate(model, H, scrub.Dataset(tiny_tokens(n=24), name="tiny"), LOSS)


# --- the command line: devices, output folders -----------------------------------------------------

@pytest.mark.parametrize("device,expected", [("gpu", r"unknown device 'gpu'\. Did you mean 'cuda'\?.*cpu, cuda"),
                                             ("cdua", r"Did you mean 'cuda'"), ("tpu", r"unknown device 'tpu'"),
                                             ("cuda:7", r"no CUDA device here|CUDA device\(s\)"),
                                             ("meta", r"not supported by scrub")])
def test_bad_devices_exit_2_with_the_valid_names(folder, device, expected):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    spec = write(folder, BASE, "device.yaml")
    for command in ("run", "validate"):
        result = CliRunner().invoke(cli, [command, str(spec), "--device", device])
        assert result.exit_code == 2 and re.search(expected, " ".join(result.output.split())), result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_invalid_input(folder):
    result = CliRunner().invoke(cli, ["run", str(write(folder, BASE, "cuda.yaml")), "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device here" in result.output and "use --device cpu" in result.output
    assert "AssertionError" not in result.output


def test_an_output_folder_that_cannot_be_written_is_refused_before_computing(folder, tmp_path):
    spec = write(folder, BASE, "out.yaml")
    (tmp_path / "a-file").write_text("")
    targets = [tmp_path / "a-file" / "out"]
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        targets.append(locked / "out")
    for target in targets:
        result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(target)])
        assert result.exit_code == 2 and "cannot write to the output folder" in result.output, result.output
        assert "unexpected error" not in result.output


# --- 6. Ctrl-C while the command starts ------------------------------------------------------------

def test_ctrl_c_during_start_up_exits_130_quietly(folder):
    """SIGINT while imports run (after Python's own start-up) ends with one line and exit 130."""
    spec = write(folder, BASE, "interrupt.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [str(pathlib.Path(sys.executable).parent / "scrub"), "validate", str(spec)]
    for delay in (0.4, 0.8):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # finished before the signal (a fast machine): nothing to check at this delay
        assert proc.returncode == 130, err
        assert "Traceback" not in err and err.strip().splitlines() == [
            "error: interrupted. Finished results are on disk; run the same command again to resume."], err
