"""`scrub sweep` without Ray: sweep files and their errors, points, resuming, the merged ranking.

The points run with `--serial` (in this process): the same worker code Ray runs, minus Ray. The
Ray runs themselves are in test_sweep_ray.py (slow; they need Ray installed).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from metrics import evaluate
from metrics.compare import rank
from metrics.stats import holm
from scrub.app.cli import runner as runner_module
from scrub.app.cli.main import cli
from scrub.app.spec import SpecError, load_spec, parse_spec, prepare
from scrub.app.sweep import expand, load_sweep
from sweep_helpers import logged, write_tiny_specs

ROOT = Path(__file__).resolve().parent.parent
PLANTED = ROOT / "hypotheses" / "cases" / "planted" / "specs"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def tiny(tmp_path):
    write_tiny_specs(tmp_path, {"a": ("head.1.0", logged("a")), "b": ("head.1.1", logged("b"))})

    def sweep(text: str, name: str = "grid.yaml") -> Path:
        (tmp_path / name).write_text(textwrap.dedent(text))
        return tmp_path / name
    return sweep


# --- the sweep file: located errors ------------------------------------------------------------

BAD = [
    ("specs: [a.yaml]\naxes:\n  seeed: [0, 1]\n", 3, "axes.seeed", "unknown setting 'seeed'.*Did you mean 'seed'"),
    ("specs: [a.yaml]\naxes:\n  hypothesis: [x]\n", 3, "axes.hypothesis", "a different hypothesis is a different spec"),
    ("specs: [a.yaml]\naxes:\n  seeds: [0, 1]\n", 3, "axes.seeds", "use the 'seed' axis"),
    ("specs: [a.yaml]\naxes:\n  seed: [0, x]\n", 3, "axes.seed", "seed must be a count or a non-empty list"),
    ("specs: [a.yaml]\naxes:\n  seed: [0, 0]\n", 3, "axes.seed", "lists a seed twice"),
    ("specs: [a.yaml]\naxes:\n  data.args.n: [40,\n    40]\n", 4, r"axes.data.args.n\[1\]", "lists the value 40 twice"),
    ("specs: [a.yaml]\naxes:\n  policy: [shared,\n    sharded]\n", 4, r"axes.policy\[1\]",
     "point 'a \\[policy=sharded\\]': unknown policy 'sharded'"),
    ("specs: [a.yaml]\naxes:\n  verdict.min_loss_recovered: [0.8,\n    high]\n", 4,
     r"axes.verdict.min_loss_recovered\[1\]", "min_loss_recovered must be a number"),
    ("specs: [a.yaml]\naxes:\n  loss.next_token.mask.x: [1]\n", 3, r"axes.loss.next_token.mask.x\[0\]",
     "'loss.next_token.mask' is None, not a mapping"),
    ("specs: [a.yaml]\naxes:\n  model: [{checkpoint: 'ckpt-*.pt'}]\n", 3, r"axes.model\[0\].checkpoint",
     "no file matches 'ckpt-\\*.pt'"),
    ("specs: [a.yaml, 'z*.yaml']\n", 1, r"specs\[1\]", "no spec file matches 'z\\*.yaml'"),
    ("specs: [a.yaml, missing.yaml]\n", 1, r"specs\[1\]", "no spec file 'missing.yaml'"),
    ("specs: [grid.yaml]\n", 1, r"specs\[0\]", "names only this sweep file"),
    ("spec: [a.yaml]\n", 1, "spec", "unknown key 'spec'. Did you mean 'specs'"),
    ("name: grid\n", 1, None, "missing required key 'specs'"),
    ("specs: [a.yaml]\nalpha: 2\n", 2, "alpha", "alpha must be a number between 0 and 1"),
    ("specs: [a.yaml\n", 2, None, "YAML syntax error"),
    ("# nothing yet\n", 1, None, "the sweep file is empty"),
]


@pytest.mark.parametrize("text,line,key,message", BAD, ids=[m[:30] for *_, m in BAD])
def test_sweep_file_errors_name_the_file_line_and_key(tiny, text, line, key, message):
    path = tiny(text)
    with pytest.raises(SpecError, match=message) as caught:
        expand(load_sweep(path))
    assert caught.value.file == str(path) and caught.value.line == line
    assert not caught.value.key if key is None else re.fullmatch(key, caught.value.key)


def test_two_specs_with_one_name_are_refused(tiny, tmp_path):
    (tmp_path / "a2.yaml").write_text((tmp_path / "a.yaml").read_text())
    with pytest.raises(SpecError, match="are both named 'a'") as caught:
        expand(load_sweep(tiny("specs: ['a*.yaml']\n")))
    assert caught.value.key == "specs[0]"


def test_the_cli_exits_2_with_the_located_message(tiny):
    result = invoke("sweep", tiny("specs: [a.yaml]\naxes:\n  seeed: [0]\n"), "--serial")
    assert result.exit_code == 2 and "grid.yaml, line 3, key 'axes.seeed'" in result.output
    assert "Traceback" not in result.output


# --- points ----------------------------------------------------------------------------------

def test_points_cross_specs_with_axes_and_write_the_values_into_the_specs(tiny, tmp_path):
    (tmp_path / "ckpts").mkdir()
    for step in (10, 20):
        (tmp_path / "ckpts" / f"step-{step}.pt").write_bytes((tmp_path / "tiny.pt").read_bytes())
    sweep = load_sweep(tiny("""\
        name: over training
        specs: ['*.yaml']
        axes:
          model: [{checkpoint: 'ckpts/step-*.pt'}]
          seed: 2
          data.args.n: [32]
          verdict.min_loss_recovered: [0.8]
        """))
    points = expand(sweep)
    assert [p.id for p in points][:3] == [
        "a [model=ckpts/step-10.pt, seed=0, data.args.n=32, verdict.min_loss_recovered=0.8]",
        "a [model=ckpts/step-10.pt, seed=1, data.args.n=32, verdict.min_loss_recovered=0.8]",
        "a [model=ckpts/step-20.pt, seed=0, data.args.n=32, verdict.min_loss_recovered=0.8]"]
    assert len(points) == 8 and len({p.slug for p in points}) == 8
    p = points[2]
    assert p.slug == "a-model-ckpts-step-20.pt-seed-0-data.args.n-32-verdict.min_loss_recovered-0.8"
    assert p.spec.model == {"checkpoint": str(tmp_path / "ckpts" / "step-20.pt")}  # relative to the sweep file
    assert p.spec.data["args"] == {"tag": "a", "n": 32} and p.spec.seeds == (0,)
    assert p.spec.rule.min_loss_recovered == 0.8 and p.spec.name == p.id == p.spec.hypothesis.name
    assert p.spec.file == str(tmp_path / "a.yaml")  # the spec's own folder still resolves its relative paths
    assert p.axes(sweep) == {"model": "ckpts/step-20.pt", "seed": "0", "data.args.n": "32",
                             "verdict.min_loss_recovered": "0.8"}
    # the point's spec.yaml is a spec file that `scrub run` reads back as the same spec
    assert parse_spec(p.spec.text, p.spec.file).raw == p.spec.raw


def test_a_sweep_without_axes_has_one_point_per_spec_with_its_own_settings(tiny):
    points = expand(load_sweep(tiny("specs: [b.yaml, a.yaml, '*.yaml']\n")))
    assert [p.id for p in points] == ["b", "a"]  # in the order named; a file two entries name runs once
    assert points[0].spec.seeds == (0, 1) and points[0].spec.text != load_spec(points[0].spec_file).text


# --- running (serially), resuming, merging -----------------------------------------------------

def test_a_serial_sweep_equals_scrub_run_and_a_rerun_computes_nothing(tiny, tmp_path, monkeypatch):
    grid = tiny("name: grid\nspecs: [a.yaml, b.yaml]\naxes:\n  seed: [0, 1]\n")
    out = tmp_path / "out"
    first = invoke("sweep", grid, "--out", out, "--serial")
    assert first.exit_code == 0, first.output
    assert "4 points, 0 already done, 4 to run" in first.output and "model reused" in first.output
    for spec in ("a", "b"):
        for seed in (0, 1):
            local = invoke("run", tmp_path / f"{spec}.yaml", "--seed", seed, "--seeds", 1, "--out", tmp_path / "local")
            assert local.exit_code == 0
            mine = json.loads((out / "grid" / f"{spec}-seed-{seed}" / "result.json").read_text())
            theirs = json.loads((tmp_path / "local" / spec / "result.json").read_text())
            for part in ("summary", "per_datum", "random_distances", "verdict", "seeds", "data"):
                assert mine[part] == theirs[part], part
            (tmp_path / "local" / spec / "result.json").unlink()
    calls = []
    real = runner_module.evaluate_many
    monkeypatch.setattr(runner_module, "evaluate_many", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = invoke("sweep", grid, "--out", out)  # not --serial: nothing to run, so Ray is not even needed
    assert again.exit_code == 0 and "4 already done, 0 to run" in again.output and calls == []
    (out / "grid" / "b-seed-1" / "result.json").unlink()  # as if that point had not finished
    assert "3 already done, 1 to run" in invoke("sweep", grid, "--out", out, "--serial").output
    assert calls == [1]


def test_the_ranking_is_holm_corrected_across_the_whole_sweep(tmp_path):
    specs = ["a-and-b.yaml", "only-a-shared-draw.yaml", "only-a-independent-draws.yaml", "head-0-1-copies.yaml"]
    (tmp_path / "planted.yaml").write_text(
        f"name: planted\nspecs: {[str(PLANTED / s) for s in specs]}\nalpha: 0.05\n"
        "axes:\n  seed: [0]\n  reference: [60]\n  verdict.min_loss_recovered: [0.9, 0.95]\n")
    result = invoke("sweep", tmp_path / "planted.yaml", "--out", tmp_path, "--serial")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "planted" / "sweep.json").read_text())
    rows = record["ranking"]
    assert record["schema"] == "scrub.sweep/1" and len(rows) == 8 and record["alpha"] == 0.05
    assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p_value"] for r in rows]))  # one family of 8
    # the same p-values, verdicts and order from evaluations computed here with each point's own rule
    points = {p.id: p for p in expand(load_sweep(tmp_path / "planted.yaml"))}
    evs, rules = [], []
    for p in points.values():
        prepared = prepare(p.spec)
        evs.append(evaluate(prepared.model, p.spec.hypothesis, prepared.data, p.spec.loss, seeds=p.spec.seeds,
                            reference=prepared.reference, metrics=p.spec.metrics))
        rules.append(p.spec.rule)
    expected = rank(evs, rules, alpha=0.05)
    assert [r["point"] for r in rows] == [r.evaluation.name for r in expected.rows]
    assert [r["p_holm"] for r in rows] == pytest.approx([r.p_holm for r in expected.rows], abs=1e-12)
    assert [r["survives"] for r in rows] == [r.survives for r in expected.rows]
    assert any(r["survives"] for r in rows) and not all(r["survives"] for r in rows)
    html = (tmp_path / "planted" / "sweep.html").read_text()
    for r in rows:
        assert f'href="{r["folder"]}/report.html"' in html
        assert (tmp_path / "planted" / r["folder"] / "report.html").exists()
    assert "Holm" in html and "<script" not in html


def test_failed_points_exit_codes_and_the_summary(tiny, tmp_path):
    write_tiny_specs(tmp_path, {"bad": ("head.1.9", logged("bad"))})
    invalid = invoke("sweep", tiny("name: grid\nspecs: [a.yaml, bad.yaml]\n"), "--out", tmp_path / "o1", "--serial")
    assert invalid.exit_code == 2, invalid.output  # only invalid input failed
    assert f"{tmp_path / 'bad.yaml'}, line 10, key 'hypothesis.children[0].paths'" in invalid.output
    record = json.loads((tmp_path / "o1" / "grid" / "sweep.json").read_text())
    assert record["counts"] == {"points": 2, "done": 1, "failed": 1, "pending": 0}
    assert "head index 9 is out of range" in [p for p in record["points"] if p["point"] == "bad"][0]["error"]
    assert 'id="unfinished-table"' in (tmp_path / "o1" / "grid" / "sweep.html").read_text()
    write_tiny_specs(tmp_path, {"down": ("head.1.0", "{function: sweep_helpers.failing_data, args: {tag: x}}")})
    crashed = invoke("sweep", tiny("name: grid\nspecs: [a.yaml, down.yaml]\n"), "--out", tmp_path / "o2", "--serial")
    assert crashed.exit_code == 1 and "RuntimeError: the data server is down" in crashed.output


def test_an_invalid_value_found_when_running_is_blamed_on_its_axis(tiny, tmp_path):
    result = invoke("sweep", tiny("specs: [a.yaml]\naxes:\n  data.args.n: [40,\n    oops]\n"), "--out", tmp_path,
                    "--serial")
    assert result.exit_code == 2
    assert "grid.yaml, line 4, key 'axes.data.args.n[1]': point 'a [data.args.n=oops]'" in result.output


def test_check_loads_every_point_and_runs_nothing(tiny, tmp_path):
    good = invoke("sweep", tiny("specs: [a.yaml]\naxes:\n  seed: [0, 1]\n"), "--check", "--out", tmp_path / "o")
    assert good.exit_code == 0 and "a [seed=1]: ok (40 data)" in good.output and not (tmp_path / "o").exists()
    (tmp_path / "not-a-checkpoint").mkdir()
    bad = invoke("sweep", tiny("specs: [a.yaml]\naxes:\n  model: [{checkpoint: not-a-checkpoint}]\n"), "--check")
    assert bad.exit_code == 2 and "grid.yaml, line 3, key 'axes.model[0]'" in bad.output


def test_without_ray_the_message_says_how_to_get_it(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    result = invoke("sweep", tiny("specs: [a.yaml]\n"), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "pip install 'scrub[ray]'" in result.output and "--serial" in result.output
    assert not (tmp_path / "out").exists()  # found out before anything was written


def test_option_conflicts_are_invalid_input(tiny):
    grid = tiny("specs: [a.yaml]\n")
    assert invoke("sweep", grid, "--serial", "--address", "auto").exit_code == 2
    assert invoke("sweep", grid, "--num-cpus", "2", "--address", "auto").exit_code == 2


EXAMPLE = ROOT / "hypotheses" / "cases" / "induction" / "sweep.yaml"


def test_the_documented_sweep_file_is_the_bundled_one():
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "sweeps.md").read_text(), flags=re.S).group(1)
    assert block == EXAMPLE.read_text()
    points = expand(load_sweep(EXAMPLE))
    assert len(points) == 7 * 2 * 3 and points[0].spec.reference == 500
    assert points[-1].id == "V: token embeddings [data.args.seed=777, seed=2, reference=500]"


@pytest.mark.slow
def test_every_point_of_the_documented_sweep_checks_against_its_model():
    result = invoke("sweep", EXAMPLE, "--check")
    assert result.exit_code == 0 and "42 points checked" in result.output, result.output
