"""W&B logging, checked by reading the offline run back from disk.

How the run is read back. An offline run (wandb 0.31) leaves a directory
`offline-run-<time>-<id>/` holding `run-<id>.wandb`, `files/` (media such as
`files/media/table/*.table.json` and `files/media/html/*.html`) and `logs/`.
It does NOT write `files/wandb-summary.json` or `files/config.yaml` (those
come from the sender, which offline runs skip), and wandb no longer ships a
Python reader for the transaction log (`wandb.sdk.internal.datastore` is
gone). So `OfflineRun` reads `run-<id>.wandb` itself:

* the container is the LevelDB log format (32 KiB blocks; each chunk a 7-byte
  header: CRC-32 seeded with the chunk type, length, type FULL/FIRST/MIDDLE/
  LAST), after a 7-byte file header `:W&B`, 0xBEE1, version 0. We check the
  magic and every CRC, so a format change fails loudly instead of silently.
* each record is a `wandb.proto.wandb_internal_pb2.Record` protobuf, parsed
  with the classes of the installed wandb.

This is the file `wandb sync` uploads, so W&B must keep reading offline runs
written by older clients (the header records a minimum consumer version):
the container and the Record messages are the most stable thing an offline
run offers, and it holds everything logged (run/config, summary, history,
artifact manifests). Tables and HTML are read from the `files/` paths the
summary points to; artifact contents from the manifest's `local_path`
(the staging copy kept for a later sync) and checked against its MD5 digest.
The log is read after `wandb.teardown()`: `run.finish()` can return before
wandb-core has flushed it (see the `runs` fixture).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from hypotheses import Hypothesis, Node
from records import cancelling_record, ranking_record as build_ranking_record, transformer_record

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

from scrub.errors import ScrubError  # noqa: E402
from scrub.app.report.wandb_log import log_ranking, log_record  # noqa: E402

SPEC_YAML = "name: only a\nmodel: {kind: additive}\nhypothesis:\n  out:\n    a: output <- a\nseeds: [0, 1]\n"
REPORT_HTML = "<html><body><h1>scrub report: only a</h1></body></html>"


# ---------------------------------------------------------------- reading an offline run back

def _log_chunks(data: bytes):
    """Records of a LevelDB-format log with W&B's file header; checks magic and CRCs."""
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), "not a W&B transaction log (format changed?)"
    block, pos, parts = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer too short for a header: zero padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if (crc, length, kind) == (0, 0, 0):  # zero fill to the end of the block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, "corrupt W&B log record"
        if kind == 1:
            yield chunk
        elif kind == 2:
            parts = chunk
        elif kind == 3:
            parts += chunk
        elif kind == 4:
            yield parts + chunk


def _apply(target: dict, item) -> None:
    """Set one ConfigItem/SummaryItem/HistoryItem (`key` or `nested_key` path) into `target`."""
    path = list(item.nested_key) or [item.key]
    for k in path[:-1]:
        target = target.setdefault(k, {})
    target[path[-1]] = json.loads(item.value_json)


class OfflineRun:
    """What one offline run recorded: config, summary, history, artifacts, files."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        logs = list(self.dir.glob("run-*.wandb"))
        assert len(logs) == 1, f"expected one transaction log in {self.dir}, found {logs}"
        self.run = None
        self.config: dict = {}
        self.summary: dict = {}
        self.history: list[dict] = []
        self.artifacts: list = []
        self.exited = False
        for chunk in _log_chunks(logs[0].read_bytes()):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunk)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                self.run = rec.run
                for item in rec.run.config.update:
                    _apply(self.config, item)
            elif kind == "config":
                for item in rec.config.update:
                    _apply(self.config, item)
            elif kind == "summary":
                for item in rec.summary.update:
                    _apply(self.summary, item)
            elif kind == "history":
                row: dict = {}
                for item in rec.history.item:
                    _apply(row, item)
                self.history.append(row)
            elif kind == "artifact":
                self.artifacts.append(rec.artifact)
            elif kind == "exit":
                self.exited = True

    def table(self, key: str) -> list[dict]:
        """Rows of the wandb.Table logged under `key`, as dicts."""
        ref = self.summary[key]
        assert ref["_type"] == "table-file", ref
        t = json.loads((self.dir / "files" / ref["path"]).read_text())
        return [dict(zip(t["columns"], row)) for row in t["data"]]

    def artifact_files(self, kind: str) -> dict[str, bytes]:
        """Name -> bytes of every file in the artifacts of type `kind`, each checked against its digest."""
        out = {}
        for art in (a for a in self.artifacts if a.type == kind):
            for entry in art.manifest.contents:
                data = Path(entry.local_path).read_bytes()
                assert base64.b64encode(hashlib.md5(data).digest()).decode() == entry.digest
                out[entry.path] = data
        return out


# ---------------------------------------------------------------- fixtures: one offline run per record

@pytest.fixture(scope="module")
def wandb_env(tmp_path_factory):
    """Every W&B path (and HOME) in a tmp dir, offline, quiet; the wandb service stopped afterwards."""
    root = tmp_path_factory.mktemp("wandb")
    mp = pytest.MonkeyPatch()
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR", "HOME",
                "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        (root / var.lower()).mkdir()
        mp.setenv(var, str(root / var.lower()))
    for var in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME"):
        mp.delenv(var, raising=False)
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_CONSOLE", "off")
    mp.setenv("WANDB_DISABLE_GIT", "true")
    mp.setenv("WANDB_DISABLE_CODE", "true")
    mp.setenv("WANDB__DISABLE_STATS", "true")  # no system-metrics sampler: faster, nothing but our records
    yield root
    wandb.teardown()  # in case a test failed before `runs` stopped the service started with these paths
    mp.undo()


def ranking() -> dict:
    """A real "scrub.compare/1" record (see tests/records.py)."""
    return build_ranking_record()


@pytest.fixture(scope="module")
def runs(wandb_env) -> dict:
    """Log three records offline, then read them back.

    `run.finish()` returns before wandb-core has written and closed the
    transaction log (the stream is closed by a fire-and-forget message), so
    reading right after finish() races the writer. `wandb.teardown()` (public
    API) waits for the service process to exit, which closes every run's log.
    """
    cancel = cancelling_record()
    spec = wandb_env / "only_a.yaml"
    spec.write_text(SPEC_YAML)
    cancel["spec"], cancel["spec_file"] = {"name": "only a", "model": {"kind": "additive"},
                                           "hypothesis": {"out": {"a": "output <- a"}}, "seeds": [0, 1]}, str(spec)
    report = wandb_env / "report.html"
    report.write_text(REPORT_HTML)
    transformer, compared = transformer_record(), ranking()
    dirs = {"cancel": log_record(cancel, project="scrub-test", spec_file=spec, report_html=report,
                                 dir=wandb_env / "runs", tags=["test"]),
            "transformer": log_record(transformer, project="scrub-test", mode="offline", dir=wandb_env / "runs"),
            "ranking": log_ranking(compared, project="scrub-test", dir=wandb_env / "runs")}
    wandb.teardown()
    records = {"cancel": cancel, "transformer": transformer, "ranking": compared}
    return {k: (records[k], OfflineRun(d)) for k, d in dirs.items()}


@pytest.fixture(scope="module")
def cancel_run(runs):
    return runs["cancel"]


@pytest.fixture(scope="module")
def transformer_run(runs):
    return runs["transformer"]


# ---------------------------------------------------------------- the cancelling toy, with spec and report

def test_run_is_a_finished_scrub_run_under_the_tmp_dir(cancel_run, wandb_env):
    record, run = cancel_run
    assert run.exited
    assert run.run.job_type == "scrub" and run.run.project == "scrub-test"
    assert run.run.display_name == "only a" and list(run.run.tags) == ["test"]
    assert wandb_env / "runs" in run.dir.parents


def test_summary_has_every_metric_with_its_intervals(cancel_run):
    record, run = cancel_run
    for metric, est in record["summary"].items():
        for bound in ("value", "low", "high", "seed_low", "seed_high"):
            key = metric if bound == "value" else f"{metric}_{bound}"
            assert run.summary[key] == pytest.approx(est[bound], rel=1e-12, abs=0)
    lr = record["summary"]["loss_recovered"]
    assert (run.summary["loss_recovered"], run.summary["loss_recovered_low"],
            run.summary["loss_recovered_high"]) == (lr["value"], lr["low"], lr["high"])
    assert run.summary["verdict"] == "survives" and run.summary["survives"] == 1
    assert run.summary["random_l2_logits"] == pytest.approx(record["random_distances"]["l2_logits"])
    assert run.summary["cancel_tested_pairs"] == 1 and run.summary["cancel_n_sets"] == 1
    # the independent-draw check and its flag
    assert run.summary["cancels"] == 1 and record["verdict"]["cancels"]
    check = record["independent_check"]
    assert run.summary["independent_excess_low"] == check["excess"]["low"] > 0
    assert run.summary["independent_l2_logits"] == check["value"]["value"]


def test_config_contains_the_spec_and_the_resolved_run(cancel_run):
    record, run = cancel_run
    for key, value in record["spec"].items():
        assert run.config[key] == value
    assert run.config["hypothesis_resolved"] == "only a"  # the spec's hypothesis tree keeps its key
    assert run.config["seeds"] == [0, 1] and run.config["loss"] == "MSE"
    assert run.config["data"] == record["data"]
    assert run.config["verdict_rule"] == record["verdict"]["rule"]


def test_results_table_matches_the_summary(cancel_run):
    record, run = cancel_run
    rows = {r["metric"]: r for r in run.table("results")}
    assert set(rows) == set(record["summary"])
    for metric, est in record["summary"].items():
        assert {k: rows[metric][k] for k in ("value", "low", "high", "seed_low", "seed_high")} == \
            {k: est[k] for k in ("value", "low", "high", "seed_low", "seed_high")}


def test_cancel_tables_name_the_cancelling_pair(cancel_run):
    record, run = cancel_run
    comps = run.table("cancel_out")
    assert [c["component"] for c in comps] == ["output <- b", "output <- c"]
    for row, comp in zip(comps, record["cancel"]["components"]):
        assert row["scrubbed_alone"] == comp["scrubbed_alone"]["value"] > 1  # each alone moves the output a lot
        assert row["restored_alone_low"] == comp["restored_alone"]["low"]
    (pair,) = run.table("cancel_pairs")
    assert (pair["a"], pair["b"]) == ("output <- b", "output <- c")
    assert pair["cancelled"] == record["cancel"]["pairs"][0]["cancelled"]["value"]
    (one,) = run.table("cancel_sets")
    assert one["components"] == "output <- b + output <- c" and one["size"] == 2
    assert one["joint_high"] == record["cancel"]["sets"][0]["joint"]["high"]


def test_histograms_are_the_per_datum_distributions(cancel_run):
    record, run = cancel_run
    n = len(record["per_datum"]["model_loss"])
    for key in ("model_loss", "scrubbed_loss", "random_loss", "l2_logits"):
        hist = run.summary[f"per_datum/{key}"]
        assert hist["_type"] == "histogram" and sum(hist["values"]) == n


def test_spec_and_report_artifacts_hold_the_files(cancel_run, wandb_env):
    record, run = cancel_run
    assert run.artifact_files("spec") == {"only_a.yaml": (wandb_env / "only_a.yaml").read_bytes()}
    assert run.artifact_files("report") == {"report.html": REPORT_HTML.encode()}
    html = run.summary["report"]
    assert html["_type"] == "html-file"
    assert (run.dir / "files" / html["path"]).read_text() == REPORT_HTML


# ---------------------------------------------------------------- the transformer: None values, no pairs

def test_transformer_record_logs_without_nan(transformer_run):
    record, run = transformer_run
    for metric, est in record["summary"].items():
        for bound in ("value", "low", "high", "seed_low", "seed_high"):
            key = metric if bound == "value" else f"{metric}_{bound}"
            if est[bound] is None:
                assert key not in run.summary
            else:
                assert run.summary[key] == est[bound]
    assert run.summary["verdict"] == "rejected" and run.summary["survives"] == 0
    assert run.config["hypothesis"] == "head 1.0 via keys"  # no spec: the record's facts under their own names
    assert {r["metric"] for r in run.table("results")} == set(record["summary"])
    comps = run.table("cancel_out")
    assert [c["component"] for c in comps] == [c["component"] for c in record["cancel"]["components"]]
    assert run.table("cancel_pairs") == [] and run.table("cancel_sets") == []
    assert run.summary["cancels"] == 0
    assert "per_datum/kl" in run.summary
    assert not run.artifact_files("spec") and "report" not in run.summary
    nodes = [r["node"] for r in run.table("hypothesis_graph")]
    assert nodes == [n["name"] for n in record["hypothesis_graph"]["nodes"]]


# ---------------------------------------------------------------- rankings and errors

def test_ranking_is_logged_as_a_table_and_per_hypothesis_summary(runs):
    record, run = runs["ranking"]
    assert run.exited and run.run.job_type == "scrub"
    rows = run.table("ranking")
    assert [r["hypothesis"] for r in rows] == [r["name"] for r in record["rows"]]
    assert [r["p_holm"] for r in rows] == [r["p_holm"] for r in record["rows"]]
    top = record["rows"][0]
    assert run.summary[f"{top['name']}/loss_recovered"] == top["loss_recovered"]["value"]
    assert run.summary[f"{top['name']}/loss_recovered_low"] == top["loss_recovered"]["low"]
    assert run.summary[f"{top['name']}/rank"] == 1 and run.summary["n_hypotheses"] == 2
    assert run.config["hypotheses"] == [r["name"] for r in record["rows"]] and run.config["alpha"] == record["alpha"]


def test_errors_are_clear(monkeypatch, tmp_path):
    record = {"schema": "scrub.result/1", "name": "x"}
    with pytest.raises(ScrubError, match="log_ranking"):
        log_record({"schema": "scrub.compare/1", "rows": []}, mode="offline", dir=tmp_path)
    with pytest.raises(ScrubError, match="no such file"):
        log_record(record, spec_file=tmp_path / "missing.yaml", mode="offline", dir=tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` sees when it is not installed
    with pytest.raises(ScrubError, match=r"pip install 'scrub\[wandb\]'"):
        log_record(record, mode="offline", dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing started


def test_engine_and_packages_never_import_wandb():
    """In a fresh interpreter, so imports made by other tests cannot hide one."""
    code = """
import sys, torch
import scrub, metrics, hypotheses
import scrub.app.report, scrub.app.report.record, scrub.app.report.wandb_log
from hypotheses import Hypothesis, Node
from conftest import tiny_transformer, tiny_tokens
h = Hypothesis(Node("output", children=[Node("head", "output <- head.1.0")]), name="h")
scrub.run(tiny_transformer(), h, scrub.Dataset(tiny_tokens(n=16)), seed=0)
bad = sorted(m for m in sys.modules if m == "wandb" or m.startswith("wandb."))
assert not bad, bad
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_python_api_log_to(tmp_path, monkeypatch):
    """evaluate(..., log_to=...) logs one run per evaluation through the same module."""
    import scrub.app.report.wandb_log as wl
    from conftest import tiny_tokens, tiny_transformer
    from scrub import Dataset
    from metrics import NextTokenLoss, evaluate

    logged = []
    monkeypatch.setattr(wl, "log_record", lambda record, **kw: logged.append((record, kw)) or "run-dir")
    evaluate(tiny_transformer(), Hypothesis(Node("root"), name="exact"), Dataset(tiny_tokens(n=20)),
             NextTokenLoss(mask_field=None), log_to=wl.to_wandb(project="p", mode="offline"))
    (record, kw), = logged
    assert record["name"] == "exact" and kw == {"run_name": "exact", "project": "p", "mode": "offline"}
