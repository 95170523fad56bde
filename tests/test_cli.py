"""The `scrub` command: same numbers as the Python API, exit codes, resume, outputs."""

import json
import os
import pathlib
import subprocess
import sys

import jsonschema
import pytest
import torch
from click.testing import CliRunner

from hypotheses.cases import paren
from scrub.app.cli import runner as runner_module
from scrub.app.cli.main import cli
from scrub.app.spec import load_spec, prepare
from metrics import evaluate

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The paren specs score the whole 100,000-string Redwood set as their pool (the original protocol): the default
# suite runs three of them (a plain one, a rewrite, one node per position), the rest are slow.
FAST_PAREN = {"external/1b-1-0-2-0-count-2-1-horizon", "ours/2b-2a-head-0-0-at-1-writes-phi-p",
              "ours/3a-1b-2-1-reads-each-position-s-horizon-class"}
SPECS = [p if "paren" not in p.relative_to(ROOT).parts or f"{p.parent.name}/{p.stem}" in FAST_PAREN else
         pytest.param(p, marks=pytest.mark.slow)
         for p in sorted((ROOT / "hypotheses" / "cases").glob("*/specs/**/*.yaml"))]
SCHEMA = json.loads((ROOT / "docs" / "result.schema.json").read_text())
REFERENCE = 150  # reference data per run: enough to compare numbers, small enough to be quick


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}" if isinstance(p, pathlib.Path)
                         else None)
def test_every_bundled_spec_runs_with_the_python_api_numbers(spec_path, tmp_path):
    needs_shared = "paren-external" in spec_path.read_text() or "paren-redwood" in spec_path.read_text() or \
        "paren-curriculum" in spec_path.read_text()
    if needs_shared and not paren.external_available():
        pytest.skip(f"shared paren-balancer folder not found at {paren.shared_dir()}")
    result = invoke("run", spec_path, "--out", tmp_path, "--reference", REFERENCE, "--seeds", 1)
    assert result.exit_code == 0, result.output
    spec = load_spec(spec_path)
    record = json.loads((tmp_path / runner_module.slug(spec.name) / "result.json").read_text())
    jsonschema.validate(record, SCHEMA)
    prepared = prepare(spec, reference=REFERENCE)
    ev = evaluate(prepared.model, spec.hypothesis, prepared.data, spec.loss, seeds=spec.seeds[:1],
                  reference=prepared.reference, metrics=spec.metrics)
    from metrics import loss_recovered

    lr = record["summary"]["loss_recovered"]["value"]
    expected = loss_recovered(*(t.double().mean().item() for t in (ev.random_loss, ev.scrub_loss, ev.model_loss)))
    assert (lr is None and expected != expected) or lr == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert record["summary"]["expected_loss"]["value"] == pytest.approx(ev.scrub_loss.mean().item(), rel=1e-6)
    assert record["verdict"]["status"] == spec.rule.judge(ev).status


@pytest.fixture
def tiny_spec(tmp_path):
    from spec_helpers import tiny_spec_text, write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path)

    def write(name="tiny", data="{function: spec_helpers.tiny_data}", site="head.1.0", seeds="[0, 1]"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(tiny_spec_text(name, data, site, seeds))
        return path
    return write


def test_outputs_and_resume(tiny_spec, tmp_path, monkeypatch):
    out = tmp_path / "out"
    a, b = tiny_spec("first"), tiny_spec("second")
    result = invoke("run", a, b, "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("first", "second"):
        folder = out / name
        assert {p.name for p in folder.iterdir()} >= {"result.json", "report.html", "spec.yaml", "partial"}
        jsonschema.validate(json.loads((folder / "result.json").read_text()), SCHEMA)
        assert sorted(p.name for p in (folder / "partial").iterdir()) == ["seed-0.pt", "seed-1.pt"]
    # a rerun recomputes nothing; a run cut short after one seed resumes from that seed
    calls = []
    real = runner_module.evaluate_many
    monkeypatch.setattr(runner_module, "evaluate_many", lambda *a, **k: calls.append(k["seeds"]) or real(*a, **k))
    assert "already done" in invoke("run", a, b, "--out", out).output and calls == []
    (out / "second" / "result.json").unlink()
    (out / "second" / "partial" / "seed-1.pt").unlink()
    assert invoke("run", a, b, "--out", out).exit_code == 0
    assert calls == [(1,)]  # only the missing seed of the unfinished spec


def test_seeds_run_as_one_stacked_pass_and_resume_per_seed(tiny_spec, tmp_path, monkeypatch):
    """Five seeds: one stacked pass of the engine, five seed files. With two of them lost, a rerun
    computes those two only, again in one pass, and the result is the same."""
    import importlib

    evaluate_module = importlib.import_module("metrics.evaluate")  # the module (metrics.evaluate is also a function)
    passes = []
    real = evaluate_module.run_seeds
    monkeypatch.setattr(evaluate_module, "run_seeds",
                        lambda c, seeds, **k: passes.append(tuple(seeds)) or real(c, seeds, **k))
    out = tmp_path / "out"
    path = tiny_spec("five", seeds="5")
    assert invoke("run", path, "--out", out).exit_code == 0
    assert passes == [(0, 1, 2, 3, 4)]
    partial = out / "five" / "partial"
    assert sorted(p.name for p in partial.iterdir()) == [f"seed-{s}.pt" for s in range(5)]
    first = json.loads((out / "five" / "result.json").read_text())
    alone = torch.load(partial / "seed-2.pt", weights_only=True)["state"]
    assert alone["seeds"] == [2] and alone["scrubbed"]["loss"].shape[0] == 1
    (out / "five" / "result.json").unlink()
    for s in (1, 3):
        (partial / f"seed-{s}.pt").unlink()
    assert invoke("run", path, "--out", out).exit_code == 0
    assert passes == [(0, 1, 2, 3, 4), (1, 3)]
    again = json.loads((out / "five" / "result.json").read_text())
    for name in ("expected_loss", "loss_recovered"):
        assert again["summary"][name]["value"] == pytest.approx(first["summary"][name]["value"], rel=1e-6)


def test_changing_the_spec_invalidates_saved_work(tiny_spec, tmp_path):
    out = tmp_path / "out"
    path = tiny_spec("x")
    invoke("run", path, "--out", out)
    path.write_text(path.read_text().replace("head.1.0", "head.1.1"))
    assert "already done" not in invoke("run", path, "--out", out).output


def test_invalid_input_exits_2_with_a_message_and_no_traceback(tiny_spec):
    result = invoke("run", tiny_spec("bad", site="head.1.9"))
    assert result.exit_code == 2
    assert "head index 9 is out of range" in result.output and "Traceback" not in result.output
    assert invoke("validate", tiny_spec("good")).exit_code == 0
    assert invoke("run", "no-such-file.yaml").exit_code == 2  # click's own usage error


def test_runtime_errors_exit_1_and_interrupts_130(tiny_spec):
    broken = invoke("run", tiny_spec("broken", data="{function: spec_helpers.broken_data}"))
    assert broken.exit_code == 1 and "unexpected error: RuntimeError: the data server is down" in broken.output
    stopped = invoke("run", tiny_spec("stopped", data="{function: spec_helpers.interrupted_data}"))
    assert stopped.exit_code == 130 and "run the same command again to resume" in stopped.output


def test_output_paths_cannot_escape(tiny_spec, tmp_path):
    path = tiny_spec("escape")
    path.write_text(path.read_text().replace("name: escape", "name: ../../outside"))
    out = tmp_path / "out"
    assert invoke("run", path, "--out", out).exit_code == 0
    assert [p.name for p in out.iterdir()] == ["outside"]
    assert not (tmp_path.parent / "outside").exists()


def test_sites_compare_and_cancel(tiny_spec, tmp_path):
    listing = invoke("sites", "induction")
    assert listing.exit_code == 0 and "head.1.3" in listing.output
    wrong = invoke("sites", "inductoin")
    assert wrong.exit_code == 2 and "Did you mean 'induction'" in wrong.output
    out = tmp_path / "out"
    ranked = invoke("compare", tiny_spec("a"), tiny_spec("b", site="head.1.1"), "--out", out)
    assert ranked.exit_code == 0, ranked.output
    record = json.loads(next(out.glob("compare-*/compare.json")).read_text())
    assert record["schema"] == "scrub.compare/1" and len(record["rows"]) == 2
    report = invoke("cancel", ROOT / "hypotheses/cases/planted/specs/only-head-0-0-shared-draw.yaml", "--out", out,
                    "--seeds", 1)
    assert report.exit_code == 0 and "1. output <- head.0.1 + output <- head.0.2: alone" in report.output
    assert "thresholds: a component is large when" in report.output and "(spec key 'cancel:')" in report.output


def test_run_flags_a_survivor_whose_parts_cancel_and_names_the_set(tmp_path):
    """The planted three-head cancellation: the verdict's flag (every run) and the set (with --cancel)."""
    spec = ROOT / "hypotheses/cases/planted/specs/only-head-0-0-shared-draw-three-heads.yaml"
    out = tmp_path / "out"
    result = invoke("run", spec, "--out", out, "--seeds", 1, "--cancel")
    assert result.exit_code == 0, result.output
    record = json.loads(next(out.glob("*/with-cancel/result.json")).read_text())
    jsonschema.validate(record, SCHEMA)
    verdict = record["verdict"]
    assert verdict["status"] == "survives" and verdict["cancels"] and record["independent_check"]["flagged"]
    assert any(f.startswith("the parts it leaves out cancel; see the cancel-out report") for f in verdict["flags"])
    assert any(f == "cancel-out sets left unexplained: output <- head.0.1 + output <- head.0.2 + output <- head.0.3"
               for f in verdict["flags"])
    assert [s["components"] for s in record["cancel"]["sets"]] == [
        ["output <- head.0.1", "output <- head.0.2", "output <- head.0.3"]]
    # one random-baseline figure: the report is scaled by the evaluation's
    assert record["cancel"]["random_distance"] == record["random_distances"]["kl"]


def test_the_installed_console_command(tiny_spec, tmp_path):
    """The real entry point, in a subprocess: exit codes are what a shell sees."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = str(pathlib.Path(sys.executable).parent / "scrub")  # installed beside this interpreter
    ok = subprocess.run([command, "validate", str(tiny_spec("ok"))], capture_output=True, text=True, env=env)
    bad = subprocess.run([command, "validate", str(tiny_spec("bad", site="hed.1.0"))], capture_output=True, text=True,
                         env=env)
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 2 and "Did you mean 'head.1.0'" in bad.stderr and "Traceback" not in bad.stderr
