"""The paren-balancer: tokens, features, generator, our checkpoint, the external model.

External-model tests need the shared folder beside the repo (or $SCRUB_PAREN_DIR)
and skip with a message where it is absent.
"""

import re

import pytest
import torch

from hypotheses.cases import paren
from scrub.errors import AdapterError, DataError


def test_tokenize_round_trip_and_padding():
    strings = ["()", ")(", "", "(" * 40, "(()())"]
    tokens = paren.tokenize(strings)
    assert tokens.shape == (5, paren.N_CTX) and tokens.dtype == torch.long
    assert tokens[0].tolist()[:5] == [paren.START, paren.OPEN, paren.CLOSE, paren.END, paren.PAD]
    assert tokens[2].tolist()[:3] == [paren.START, paren.END, paren.PAD]
    assert tokens[3, -1] == paren.END and (tokens[3, 1:-1] == paren.OPEN).all()
    assert (tokens[:, 0] == paren.START).all()
    assert paren.detokenize(tokens) == strings
    for row, s in zip(tokens, strings):  # PAD exactly after END
        assert (row[len(s) + 2:] == paren.PAD).all() and row[len(s) + 1] == paren.END


def test_tokenize_rejects_bad_strings():
    with pytest.raises(DataError, match="41 brackets"):
        paren.tokenize(["(" * 41])
    with pytest.raises(DataError, match=r"'\(x\)'"):
        paren.tokenize(["()", "(x)"])


@pytest.mark.parametrize("s, diff, never_neg, start_open, balanced", [
    ("", 0, True, False, True),
    ("()", 0, True, True, True),
    ("(())()", 0, True, True, True),
    (")(", 0, False, False, False),        # equal counts, goes negative
    ("())(()", 0, False, True, False),     # dips to -1 in the middle
    ("(()", 1, True, True, False),         # never negative, unequal
    ("((((", 4, True, True, False),
    ("))", -2, False, False, False),
])
def test_features(s, diff, never_neg, start_open, balanced):
    assert paren.count_diff(s) == diff
    assert paren.is_equal_count(s) == (diff == 0)
    assert paren.elevation_never_negative(s) == never_neg
    assert paren.first_goes_negative(s) == (not never_neg)
    assert paren.starts_with_open(s) == start_open
    assert paren.is_balanced(s) == balanced


def test_first_negative_index():
    assert paren.first_negative_index("(())") == -1
    assert paren.first_negative_index(")") == 0
    assert paren.first_negative_index("())(") == 2


def test_make_dataset_is_seeded_and_has_both_hard_negatives():
    a, b, c = paren.make_dataset(2000, seed=1), paren.make_dataset(2000, seed=1), paren.make_dataset(2000, seed=2)
    assert a.raw == b.raw and torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert a.raw != c.raw
    assert torch.equal(a.inputs, paren.tokenize(a.raw))
    assert a.labels.tolist() == [int(paren.is_balanced(s)) for s in a.raw]
    assert all(2 <= len(s) <= 40 for s in a.raw)
    equal_but_dips = sum(paren.is_equal_count(s) and not paren.elevation_never_negative(s) for s in a.raw)
    nonneg_unequal = sum(paren.elevation_never_negative(s) and not paren.is_equal_count(s) for s in a.raw)
    assert 0.3 < a.labels.float().mean() < 0.6
    assert equal_but_dips > 0.15 * len(a) and nonneg_unequal > 0.15 * len(a)
    dips_by_one = [s for s in a.raw if paren.is_equal_count(s) and paren.first_goes_negative(s)
                   and min(_elevations(s)) == -1]
    assert len(dips_by_one) > 0.1 * len(a)  # the hardest kind: only one step below zero


def _elevations(s):
    e, out = 0, []
    for ch in s:
        e += 1 if ch == "(" else -1
        out.append(e)
    return out


def test_our_checkpoint_is_accurate():
    model = paren.load_model()
    assert _same_shape(model.cfg, paren.CONFIG)
    assert paren.accuracy(model, paren.make_dataset(2000, seed=12345)) >= 0.97


def _same_shape(a, b):
    keys = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx",
            "act_fn", "attention_dir", "pad_token_id")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def test_trimming_keeps_position_zero_logits():
    model = paren.load_model()
    data = paren.make_dataset(64, seed=3)
    short = torch.tensor([len(s) <= 10 for s in data.raw])
    with torch.no_grad():
        full = model(data.inputs[short])[:, 0]
        trimmed = model(paren.trim(data.inputs[short]))[:, 0]
    assert torch.allclose(full, trimmed, atol=1e-4)


# --- state-dict adapter (runs without the shared folder: our weights have the same keys) ----
def _tl_style_state_dict():
    sd = dict(paren.load_model().state_dict())
    for layer in range(3):  # old TL attention buffers, which the loader must drop
        sd[f"blocks.{layer}.attn.mask"] = torch.ones(paren.N_CTX, paren.N_CTX, dtype=torch.bool).tril()
        sd[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    return sd


def test_adapter_accepts_tl_buffers_and_loads_file(tmp_path):
    sd = _tl_style_state_dict()
    path = tmp_path / "ok.pt"
    torch.save(sd, path)
    model = paren.load_external_model(path)
    ours = paren.load_model()
    tokens = paren.make_dataset(32, seed=4).inputs
    with torch.no_grad():
        assert torch.allclose(model(tokens), ours(tokens))


def test_adapter_missing_key_is_named(tmp_path):
    sd = _tl_style_state_dict()
    del sd["blocks.1.attn.W_K"]
    path = tmp_path / "missing.pt"
    torch.save(sd, path)
    with pytest.raises(AdapterError, match=r"missing keys \['blocks\.1\.attn\.W_K'\]") as err:
        paren.load_external_model(path)
    assert str(path) in str(err.value)


def test_adapter_wrong_shape_and_unexpected_key_are_named():
    sd = _tl_style_state_dict()
    sd["blocks.2.mlp.W_in"] = torch.zeros(56, 64)
    sd["blocks.3.attn.W_Q"] = torch.zeros(2, 56, 28)
    with pytest.raises(AdapterError) as err:
        paren.from_tl_state_dict(sd, source="corrupt.pt")
    msg = str(err.value)
    assert "corrupt.pt" in msg and "blocks.2.mlp.W_in: file (56, 64), model (56, 56)" in msg
    assert "unexpected keys ['blocks.3.attn.W_Q']" in msg


def test_missing_shared_folder_error_names_path_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv(paren.ENV_VAR, str(tmp_path / "nowhere"))
    assert not paren.external_available()
    with pytest.raises(paren.ExternalNotFound, match=paren.ENV_VAR) as err:
        paren.load_external_model()
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(FileNotFoundError):
        paren.load_external_data("redwood")


# --- the external model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def external():
    if not paren.external_available():
        pytest.skip(f"shared paren-balancer folder not found at {paren.shared_dir()} "
                    f"(set ${paren.ENV_VAR} to point elsewhere)")
    return paren.load_external_model()


def test_external_files_match_readme_sha256(external):
    readme = (paren.shared_dir() / "README.md").read_text()
    for name, digest in paren.SHA256.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert re.search(r"sha256 `([0-9a-f]{64})`", row).group(1) == digest
        assert paren.sha256(paren.shared_dir() / name) == digest, f"{name} differs from the README's sha256"


@pytest.mark.parametrize("which", ["redwood", "curriculum"])
def test_external_model_accuracy(external, which):
    data = paren.load_external_data(which)
    assert len(data) == 100_000 and data.name == f"paren-{which}"
    subset = data.take(torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:3000])
    assert paren.accuracy(external, subset) > 0.999
