"""What `scrub` writes: one folder per spec file, never shared; results of different commands side by side;
files with the umask's permissions; W&B checked before computing and kept under --out; runs cut short by
kill -9 or Ctrl-C resume to identical numbers."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from scrub.app.cli import runner as runner_module
from scrub.app.cli.main import cli

from spec_helpers import tiny_spec_text, write_tiny_checkpoint

ROOT = pathlib.Path(__file__).resolve().parent.parent


def invoke(*args, **kw):
    return CliRunner(**kw).invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def spec_file(tmp_path):
    write_tiny_checkpoint(tmp_path)

    def write(name: str, file: str, site: str = "head.1.0", seeds: str = "[0, 1]", data: str = "tiny_data"):
        path = tmp_path / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tiny_spec_text(name, f"{{function: spec_helpers.{data}}}", site, seeds,
                                       os.path.relpath(tmp_path / "tiny.pt", path.parent)))
        return path
    return write


def counting(monkeypatch) -> list:
    calls: list = []
    real = runner_module.evaluate_many
    monkeypatch.setattr(runner_module, "evaluate_many", lambda *a, **k: calls.append(k["seeds"]) or real(*a, **k))
    return calls


def test_specs_that_would_share_a_folder_each_keep_their_own(spec_file, tmp_path, monkeypatch):
    """Names that differ only in what a folder name drops, and two files with one name (as the bundled
    paren ours/ and external/ specs): four folders, found again on the next run."""
    specs = [spec_file("a\U0001F642", "emoji.yaml"), spec_file("a!", "bang.yaml", site="head.1.1"),
             spec_file("same", "ours/s.yaml"), spec_file("same", "external/s.yaml", site="head.0.1")]
    out = tmp_path / "out"
    assert invoke("run", *specs, "--out", out).exit_code == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["a", "a-2", "same", "same-2"]
    owners = {(out / f / ".scrub-owner").read_text().strip() for f in folders}
    assert owners == {str(s.resolve()) for s in specs}
    results = {json.loads((out / f / "result.json").read_text())["spec_file"] for f in folders}
    assert results == {str(s) for s in specs}  # four results, none overwritten
    calls = counting(monkeypatch)
    again = invoke("run", *reversed(specs), "--out", out)  # another order: each spec finds its own folder
    assert again.output.count("already done: reused") == 4 and calls == []
    (out / "a-2" / "result.json").unlink()
    assert invoke("run", *specs, "--out", out).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == folders and calls == []  # its saved seeds were reused


def test_a_folder_the_spec_does_not_own_is_left_alone(spec_file, tmp_path):
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "notes.txt").write_text("the user's own file")
    assert invoke("run", spec_file("mine", "mine.yaml"), "--out", out).exit_code == 0
    assert (out / "mine" / "notes.txt").read_text() == "the user's own file"
    assert not (out / "mine" / "result.json").exists() and (out / "mine-2" / "result.json").exists()


def test_results_of_run_and_of_the_cancel_out_report_coexist(spec_file, tmp_path, monkeypatch):
    spec, out = spec_file("both", "both.yaml"), tmp_path / "out"
    assert invoke("run", spec, "--out", out, "--cancel").exit_code == 0
    calls = counting(monkeypatch)
    plain = invoke("run", spec, "--out", out)
    assert plain.exit_code == 0 and calls == []  # the seeds the cancel run saved are reused
    folder = out / "both"
    with_cancel = json.loads((folder / "with-cancel" / "result.json").read_text())
    alone = json.loads((folder / "result.json").read_text())
    assert with_cancel["cancel"] is not None and alone["cancel"] is None
    assert with_cancel["summary"] == alone["summary"]
    assert (folder / "report.html").exists() and (folder / "with-cancel" / "report.html").exists()
    cancel = invoke("cancel", spec, "--out", out)
    assert "reused (already computed with these settings)" in cancel.output and calls == []
    assert "already done: reused" in invoke("run", spec, "--out", out).output


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_umasks_permissions(spec_file, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        assert invoke("run", spec_file("perm", "perm.yaml", seeds="[0]"), "--out", out).exit_code == 0
    finally:
        os.umask(old)
    for name in ("result.json", "report.html", "spec.yaml", "partial/seed-0.pt"):
        assert stat.S_IMODE((out / "perm" / name).stat().st_mode) == mode, name


def test_compare_names_both_files_it_writes(spec_file, tmp_path):
    out = tmp_path / "out"
    result = invoke("compare", spec_file("a", "a.yaml"), spec_file("b", "b.yaml", site="head.1.1"), "--out", out)
    folder = out / "compare-a-b"
    assert f"wrote {folder / 'compare.json'} and {folder / 'compare.html'}" in result.output
    assert (folder / "compare.json").exists() and (folder / "compare.html").exists()


def test_wandb_login_is_checked_before_computing(spec_file, tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    calls = counting(monkeypatch)
    result = invoke("run", spec_file("w", "w.yaml"), "--out", tmp_path / "out", "--wandb")
    assert result.exit_code == 2 and "needs a login" in result.output and "WANDB_MODE=offline" in result.output
    assert calls == [] and not list((tmp_path / "out").glob("*/result.json"))


def test_wandb_files_go_under_out(spec_file, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("run", spec_file("w", "w.yaml", seeds="[0]"), "--out", tmp_path / "out", "--wandb")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "wandb").is_dir() and not (work / "wandb").exists()


# --- interrupted runs lose nothing and resume to identical numbers ------------------------------------

def numbers(folder: pathlib.Path) -> tuple:
    record = json.loads((folder / "result.json").read_text())
    return record["summary"], record["per_datum"], record["verdict"]


def test_a_run_interrupted_between_seeds_resumes_to_identical_numbers(spec_file, tmp_path, monkeypatch):
    """Seeds run as one stacked pass and are saved one file each: stopped while saving the third, a rerun
    computes only the two seeds with no file, and the numbers equal an uninterrupted run's."""
    spec = spec_file("cut", "cut.yaml", seeds="4")
    assert invoke("run", spec, "--out", tmp_path / "whole").exit_code == 0
    real_write, real_eval, saved, computed = runner_module.write_atomic, runner_module.evaluate_many, [], []

    def interrupt_third_seed(path, data):
        if path.name.startswith("seed-"):
            saved.append(path.name)
            if len(saved) == 3:
                raise KeyboardInterrupt
        return real_write(path, data)

    def recording(*a, **k):
        computed.append(tuple(k["seeds"]))
        return real_eval(*a, **k)
    monkeypatch.setattr(runner_module, "write_atomic", interrupt_third_seed)
    cut = invoke("run", spec, "--out", tmp_path / "cut")
    assert cut.exit_code == 130 and "run the same command again to resume" in cut.output
    assert len(list((tmp_path / "cut" / "cut" / "partial").glob("seed-*.pt"))) == 2
    monkeypatch.setattr(runner_module, "write_atomic", real_write)
    monkeypatch.setattr(runner_module, "evaluate_many", recording)
    assert invoke("run", spec, "--out", tmp_path / "cut").exit_code == 0
    assert computed == [(2, 3)]  # only the seeds with no saved file, in one pass
    assert numbers(tmp_path / "cut" / "cut") == numbers(tmp_path / "whole" / "cut")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_run_cut_short_resumes_to_identical_numbers(spec_file, tmp_path, sig):
    """The real command in a subprocess, stopped by a signal as soon as its first seed is saved."""
    spec = spec_file("cut", "cut.yaml", seeds="8", data="tiny_data")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [str(pathlib.Path(sys.executable).parent / "scrub"), "run", str(spec), "--reference", "3000"]
    whole = subprocess.run(command + ["--out", str(tmp_path / "whole")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "cut-out"
    proc = subprocess.Popen(command + ["--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(out.glob("*/partial/seed-*.pt")):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        assert proc.returncode == 130 and "Traceback" not in err, err
    resumed = subprocess.run(command + ["--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert numbers(out / "cut") == numbers(tmp_path / "whole" / "cut")  # bit-identical, however it was cut
