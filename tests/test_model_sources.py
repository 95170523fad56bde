"""Models named in spec files: a local Hugging Face folder, a builder function beside the spec; never the network."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

import bridge_models
from scrub.app.cli.main import cli
from scrub.app.spec import SpecError, load_spec, prepare

ROOT = pathlib.Path(__file__).resolve().parent.parent

BESIDE = '''
import torch
import scrub
from scrub import Dataset


def repeated_tokens(n=48, half=4, seed=0):
    """ABCD ABCD: random halves, repeated."""
    first = torch.randint(4, 16, (n, half), generator=torch.Generator().manual_seed(seed))
    return Dataset(torch.cat([first, first], 1), name="repeated tokens")


class Toy(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.a(x) + 2 * self.b(x)


def toy(seed=0):
    model = Toy(seed)
    return scrub.additive(model, terms={"a": model.a, "b": (model.b, 2.0)})


def points(n=64):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    return Dataset(x, labels=torch.zeros(n, 1))


def not_a_model():
    return "gpt2"
'''

HF_SPEC = '''
model: {hf: tiny-llama}
data: {function: beside.repeated_tokens}
loss: {next_token: {mask: null}}
seeds: 2
hypothesis:
  name: output
  children:
    - name: heads 1.0 and 1.1
      paths: [output <- head.1.0, output <- head.1.1]
      children:
        - {name: keys of 1.0, paths: .k <- head.0.2, sampler: {agree: {token_at: 0}}}
'''

FUNCTION_SPEC = '''
model: {function: beside.toy, args: {seed: 3}}
data: {function: beside.points}
loss: {mse: {}}
hypothesis:
  name: output
  children:
    - {name: a, paths: output <- a}
'''


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """A folder holding a tiny Llama (grouped-query attention) saved with save_pretrained, a module of builders
    and the two specs naming them."""
    folder = tmp_path_factory.mktemp("specs")
    bridge_models.save("llama_gqa", folder / "tiny-llama")
    (folder / "beside.py").write_text(BESIDE)
    (folder / "hf.yaml").write_text(HF_SPEC)
    (folder / "function.yaml").write_text(FUNCTION_SPEC)
    return folder


def test_a_spec_names_a_local_folder_and_a_builder_beside_it(specs):
    hf = prepare(load_spec(specs / "hf.yaml"))
    assert type(hf.model).__name__ == "TransformerBridge" and len(hf.data) == 48
    toy = prepare(load_spec(specs / "function.yaml"))
    assert type(toy.model).__name__ == "AdditiveAdapter"
    assert str(specs) not in sys.path  # the spec's folder is on the path only while it loads


def test_sites_of_a_grouped_query_model_explain_shared_key_heads(specs):
    for target in (specs / "tiny-llama", specs / "hf.yaml"):
        out = CliRunner().invoke(cli, ["sites", str(target)])
        assert out.exit_code == 0, out.output
        assert "k/v from KV head 0, shared with head.1.1" in out.output
        assert "A claim on head.L.H.k (or .v) is about head H's attention alone" in out.output
        assert "no pos_embed site" in out.output


@pytest.mark.parametrize("model, message", [
    ("{function: beside.not_a_model}", r"key 'model\.function'.*cannot scrub a str"),
    ("{function: beside.toy, args: {sed: 1}}", r"calling beside\.toy: .*unexpected keyword argument 'sed'"),
    ("{function: beside.nothing}", r"'beside' has no attribute 'nothing'"),
    ("{hf: no-such-folder/deeper/x}", r"no folder 'no-such-folder/deeper/x'"),
    ("{hf: tiny-llama, dtype: float8}", r"dtype must be one of float32"),
])
def test_bad_model_entries_are_located_errors(specs, model, message):
    path = specs / "bad.yaml"
    path.write_text(FUNCTION_SPEC.replace("{function: beside.toy, args: {seed: 3}}", model))
    with pytest.raises(SpecError, match=message):
        prepare(load_spec(path))


TRIPWIRE = '''
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
    raise OSError("network access refused by the test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import atexit
atexit.register(lambda: print(f"NETWORK ATTEMPTS: {len(attempts)} {attempts[:3]}", file=sys.stderr))
import huggingface_hub  # imported first, as a user's own code might: scrub must still switch it offline
from scrub.app.cli.main import cli
cli()
'''


def _scrub_offline(args, cwd, tmp_path):
    """The scrub command in a fresh process whose sockets refuse to connect, with an empty HF cache and none of
    the offline switches set in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH")}
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")
    return subprocess.run([sys.executable, "-c", TRIPWIRE, *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


def test_scrub_run_never_touches_the_network(specs, tmp_path):
    """One process: two specs run, and a third naming a model that is not on disk fails at once, located in the
    spec (specs run in order; the failure ends the command with exit code 2)."""
    (specs / "cached.yaml").write_text(HF_SPEC.replace("{hf: tiny-llama}", "{transformer_lens: gpt2}"))
    out = tmp_path / "out"
    run = _scrub_offline(["run", "hf.yaml", "function.yaml", "cached.yaml", "--out", str(out)], specs, tmp_path)
    assert "NETWORK ATTEMPTS: 0 []" in run.stderr
    for name in ("hf", "function"):
        record = json.loads((out / name / "result.json").read_text())
        assert record["summary"]["loss_recovered"]["value"] is not None
    assert run.returncode == 2, run.stderr
    assert "key 'model.transformer_lens'" in run.stderr and "scrub never downloads" in run.stderr


def test_a_name_in_the_local_cache_loads_offline(specs, tmp_path, monkeypatch):
    """`hf: org/name` finds a model cached under its hub name (the cache layout huggingface_hub writes)."""
    import shutil

    import huggingface_hub.constants as constants

    from scrub.huggingface import load_hf

    snapshot = tmp_path / "hub" / "models--local--tiny-llama" / "snapshots" / ("0" * 40)
    shutil.copytree(specs / "tiny-llama", snapshot)
    (tmp_path / "hub" / "models--local--tiny-llama" / "refs").mkdir()
    (tmp_path / "hub" / "models--local--tiny-llama" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    bridge = load_hf("local/tiny-llama")
    assert bridge.cfg.n_key_value_heads == 2


def test_a_folder_without_a_tokenizer_says_what_to_save(tmp_path):
    from scrub import AdapterError
    from scrub.huggingface import load_hf

    bridge_models.hf_model("llama_gqa").save_pretrained(tmp_path / "weights-only")
    with pytest.raises(AdapterError, match=r"needs a tokenizer beside the weights.*tokenizer\.save_pretrained"):
        load_hf(tmp_path / "weights-only")
