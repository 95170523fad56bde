"""`scrub sweep` on real Ray clusters: a private local one (2 workers) and one started with `ray start
--head`. Each test runs the installed command in a subprocess, as a user would, and kills, interrupts
or fails points from outside.

Skipped when Ray is not installed (`pip install 'scrub[ray]'`, or `make install-ray`); CI installs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from scrub.app.cli.main import cli
from sweep_helpers import HOLD, LOG, calls, free_port, logged, scrub_command, wait_for_call, write_tiny_specs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="Ray is not installed: the sweep tests on Ray need `pip install 'scrub[ray]'` "
                              "(or `make install-ray`)"),
]

TESTS = Path(__file__).resolve().parent
GRID = "name: grid\nspecs: [a.yaml, b.yaml]\naxes:\n  seed: [0, 1]\n"
IDS = ["a [seed=0]", "a [seed=1]", "b [seed=0]", "b [seed=1]"]
NUMBERS = ("summary", "per_datum", "random_distances", "verdict", "distance_checked", "seeds", "data", "loss")


def sweep_env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               RAY_USAGE_STATS_ENABLED="0", **{LOG: str(root / "calls.log"), HOLD: str(root / "hold")})
    (root / "hold").mkdir(exist_ok=True)
    env.update(extra)
    return env


def wandb_env(root: Path) -> dict:
    """Offline W&B with every path in `root` (as tests/test_wandb_logging.py sets it up)."""
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true",
           "WANDB_DISABLE_CODE": "true", "WANDB__DISABLE_STATS": "true"}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        (root / var.lower()).mkdir(exist_ok=True)
        env[var] = str(root / var.lower())
    return env


def start_sweep(root: Path, env: dict, *options) -> subprocess.Popen:
    """`scrub sweep ROOT/grid.yaml --out ROOT/out ...` in the background; its output goes to a file of its own."""
    output = root / f"output-{len(list(root.glob('output-*.txt')))}.txt"
    process = subprocess.Popen([scrub_command(), "sweep", str(root / "grid.yaml"), "--out", str(root / "out"),
                                *options], cwd=root, env=env, stdout=output.open("w"), stderr=subprocess.STDOUT)
    process.output = output
    return process


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    rc = process.wait(timeout=timeout)
    text = process.output.read_text()
    print(text)
    return rc, text


def folder_files(folder: Path) -> dict:
    """Every file of a finished point: bytes, modification time and inode (a rewrite changes them)."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def local_run(spec: Path, seed: int, out: Path) -> dict:
    """The same spec and seed through `scrub run`, in this process."""
    result = CliRunner().invoke(cli, ["run", str(spec), "--seed", str(seed), "--seeds", "1", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / spec.stem / "result.json").read_text())


def assert_same_numbers(sweep_record: dict, local_record: dict) -> None:
    for part in NUMBERS:
        assert sweep_record[part] == local_record[part], part


# --------------------------------------------------------------------------------------------------
# A 2-spec x 2-seed sweep on a private 2-CPU cluster; one worker is killed mid-point (SIGKILL from
# outside); the first run reports that point, the rerun computes it and nothing else. Both log to W&B.

@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("killed")
    write_tiny_specs(root, {"a": ("head.1.0", logged("a")), "b": ("head.1.1", logged("b"))})
    (root / "grid.yaml").write_text(GRID)
    env = {**sweep_env(root), **wandb_env(root)}
    options = ["--num-cpus", "2", "--retries", "0", "--wandb", "--wandb-project", "sweep-test"]
    (root / "hold" / "b").touch()  # b's points wait in their data function until the kill
    started = time.time()
    first = start_sweep(root, env, *options)
    victim = wait_for_call(root / "calls.log", "b", first)
    os.kill(victim, signal.SIGKILL)
    (root / "hold" / "b").unlink()
    rc1, out1 = finish(first)
    first_seconds = time.time() - started
    calls1 = calls(root / "calls.log")
    point_folders = sorted((root / "out" / "grid").iterdir())
    before = {p.name: folder_files(p) for p in point_folders if (p / "result.json").exists()}
    started = time.time()
    rc2, out2 = finish(start_sweep(root, env, *options))
    return SimpleNamespace(root=root, out=root / "out" / "grid", rc1=rc1, out1=out1, rc2=rc2, out2=out2,
                           calls1=calls1, calls2=calls(root / "calls.log")[len(calls1):], before=before,
                           seconds=(first_seconds, time.time() - started))


def test_the_killed_point_is_reported_and_the_others_finish(killed):
    assert killed.rc1 == 1, killed.out1
    assert sorted(killed.calls1) == ["a", "a", "b", "b"]  # every point started once; one of b's was killed
    assert "its worker process died" in killed.out1 and "1 point(s) failed" in killed.out1
    failed = [name for name in ("b-seed-0", "b-seed-1") if name not in killed.before]
    assert len(failed) == 1 and sorted(killed.before) == sorted({"a-seed-0", "a-seed-1", "b-seed-0", "b-seed-1"}
                                                                 - set(failed))


def test_the_rerun_computes_only_the_killed_point(killed):
    assert killed.rc2 == 0, killed.out2
    assert "4 points, 3 already done, 1 to run" in killed.out2
    assert killed.calls2 == ["b"]  # one point computed
    for name, files in killed.before.items():  # the finished points' files were not touched
        assert folder_files(killed.out / name) == files, name
    assert not list(killed.out.glob("*/error.txt"))
    record = json.loads((killed.out / "sweep.json").read_text())
    assert record["counts"] == {"points": 4, "done": 4, "failed": 0, "pending": 0}
    assert sorted(r["point"] for r in record["ranking"]) == IDS
    print(f"first run (with the kill) {killed.seconds[0]:.1f}s, rerun {killed.seconds[1]:.1f}s")


def test_every_point_equals_scrub_run_of_its_spec_and_seed(killed, tmp_path):
    for spec in ("a", "b"):
        for seed in (0, 1):
            local = local_run(killed.root / f"{spec}.yaml", seed, tmp_path / f"{spec}{seed}")
            swept = json.loads((killed.out / f"{spec}-seed-{seed}" / "result.json").read_text())
            assert_same_numbers(swept, local)


def test_the_w_and_b_runs_of_the_sweep_and_its_rerun_share_one_group(killed):
    from test_wandb_logging import OfflineRun  # reads an offline run's transaction log

    runs = [OfflineRun(d) for d in sorted((killed.root / "wandb_dir").glob("wandb/offline-run-*"))]
    assert sorted(r.run.display_name for r in runs) == IDS  # one per point: 3 from the first run, 1 from the rerun
    assert {r.run.run_group for r in runs} == {"grid"} and {r.run.project for r in runs} == {"sweep-test"}
    folders = {p["point"]: p["folder"] for p in json.loads((killed.out / "sweep.json").read_text())["points"]}
    for r in runs:
        assert r.exited
        record = json.loads((killed.out / folders[r.run.display_name] / "result.json").read_text())
        assert r.summary["loss_recovered"] == record["summary"]["loss_recovered"]["value"]
        assert r.config["seeds"] == record["seeds"]


# --------------------------------------------------------------------------------------------------

def test_crashes_are_retried_boundedly_invalid_input_is_not_and_the_others_finish(tmp_path):
    write_tiny_specs(tmp_path, {"good": ("head.1.0", logged("good")), "bad": ("head.1.9", logged("bad")),
                                "flaky": ("head.1.0", "{function: sweep_helpers.failing_data, args: {tag: flaky}}")})
    (tmp_path / "grid.yaml").write_text("name: grid\nspecs: ['*.yaml']\n")
    rc, out = finish(start_sweep(tmp_path, sweep_env(tmp_path), "--num-cpus", "2", "--retries", "1"))
    assert rc == 1 and "2 point(s) failed" in out
    log = calls(tmp_path / "calls.log")
    assert (log.count("good"), log.count("bad"), log.count("flaky")) == (1, 1, 2)  # 1 + retries for the crash only
    flaky = (tmp_path / "out" / "grid" / "flaky" / "error.txt").read_text()
    assert "it raised RuntimeError (2 attempts)" in flaky and "RuntimeError: the data server is down" in flaky
    assert "\x1b[" not in flaky and "sweep_helpers.py" in flaky  # the remote traceback, without colour codes
    bad = (tmp_path / "out" / "grid" / "bad" / "error.txt").read_text()
    assert f"{tmp_path / 'bad.yaml'}, line 10" in bad and "head index 9 is out of range" in bad
    record = json.loads((tmp_path / "out" / "grid" / "sweep.json").read_text())
    assert record["counts"] == {"points": 3, "done": 1, "failed": 2, "pending": 0}
    assert [r["point"] for r in record["ranking"]] == ["good"]


def test_ctrl_c_cancels_the_sweep_exits_130_and_keeps_what_finished(tmp_path):
    write_tiny_specs(tmp_path, {"a": ("head.1.0", logged("a")), "b": ("head.1.1", logged("b"))})
    (tmp_path / "grid.yaml").write_text(GRID)
    env = sweep_env(tmp_path)
    (tmp_path / "hold" / "b").touch()  # b's points hold until the interrupt
    process = start_sweep(tmp_path, env, "--num-cpus", "2")
    wait_for_call(tmp_path / "calls.log", "b", process)
    deadline = time.time() + 120
    while len(list((tmp_path / "out" / "grid").glob("a-*/result.json"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    interrupted = time.time()
    rc, out = finish(process, timeout=120)
    assert rc == 130 and "interrupted" in out and "run the same command again to resume" in out
    assert time.time() - interrupted < 60
    record = json.loads((tmp_path / "out" / "grid" / "sweep.json").read_text())
    assert record["counts"] == {"points": 4, "done": 2, "failed": 0, "pending": 2}


# --------------------------------------------------------------------------------------------------
# An existing cluster: `ray start --head` (with token authentication), then `scrub sweep --address`.

@pytest.fixture
def ray_head(tmp_path):
    import tempfile

    port, token = free_port(), os.urandom(16).hex()
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths live under it
    log = Path(temp) / "head.log"
    env = sweep_env(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    ray = str(Path(scrub_command()).with_name("ray"))
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            env=env, cwd=temp, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        yield SimpleNamespace(address=f"127.0.0.1:{port}", token=token)
    finally:
        head.terminate()  # `ray start --block` stops its own processes on SIGTERM (not `ray stop`: it stops all)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        import shutil
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_on_an_existing_cluster_equals_local_runs(ray_head, tmp_path):
    write_tiny_specs(tmp_path, {"a": ("head.1.0", logged("a"))})
    (tmp_path / "grid.yaml").write_text("name: grid\nspecs: a.yaml\naxes:\n  seed: [0, 1]\n")
    env = sweep_env(tmp_path, RAY_AUTH_TOKEN=ray_head.token)  # the mode is switched on by scrub: a token is at hand
    rc, out = finish(start_sweep(tmp_path, env, "--address", ray_head.address))
    assert rc == 0, out
    assert f"on the Ray cluster at {ray_head.address} (2 CPUs, 0 GPUs)" in out
    for seed in (0, 1):
        swept = json.loads((tmp_path / "out" / "grid" / f"a-seed-{seed}" / "result.json").read_text())
        assert_same_numbers(swept, local_run(tmp_path / "a.yaml", seed, tmp_path / f"local{seed}"))


def test_an_address_where_no_cluster_listens_fails_at_once(tmp_path):
    write_tiny_specs(tmp_path, {"a": ("head.1.0", logged("a"))})
    (tmp_path / "grid.yaml").write_text("name: grid\nspecs: a.yaml\n")
    started = time.time()
    rc, out = finish(start_sweep(tmp_path, sweep_env(tmp_path), "--address", f"127.0.0.1:{free_port()}"),
                     timeout=120)
    assert rc == 2 and "no Ray cluster answers at 127.0.0.1:" in out and "ray start --head" in out
    assert "Traceback" not in out and time.time() - started < 60
