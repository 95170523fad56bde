"""Paren-balancer: tokens, data, our own trained model, and the external one.

Two models share one shape (3 layers, d_model 56, 2 heads, bidirectional,
pad keys masked, logits `(unbalanced, balanced)` read at position 0):

* `load_model()` — trained by this project (`scripts/train_paren.py`) on
  `make_dataset` data; ships with the package, so tests and examples always run.
* `load_external_model()` — the publicly studied model (Redwood / ARENA),
  read from the shared folder beside the repo; the check that the toolkit
  reads real TransformerLens checkpoints. Absent on users' machines.

The per-string feature helpers at the bottom take ONE bracket string, so
hypotheses can use them as plain Python features of `Dataset.raw`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from scrub.data import Dataset
from scrub.errors import AdapterError, DataError, ScrubError
from scrub.models.transformer import ScrubTransformer, TransformerConfig, load_checkpoint

# --- tokens -----------------------------------------------------------------
START, PAD, END, OPEN, CLOSE = 0, 1, 2, 3, 4
N_CTX = 42
MAX_LEN = N_CTX - 2  # brackets per string, between [start] and [end]

CONFIG = TransformerConfig(n_layers=3, d_model=56, n_heads=2, d_head=28, d_mlp=56, d_vocab=5, d_vocab_out=2,
                           n_ctx=N_CTX, act_fn="relu", attention_dir="bidirectional", pad_token_id=PAD)

# --- where things live ------------------------------------------------------
ENV_VAR = "SCRUB_PAREN_DIR"
REPO_DIR = Path(__file__).resolve().parents[3]
SHARED_DIR = REPO_DIR.parent / "shared" / "data" / "paren-balancer"
CHECKPOINT = Path(__file__).resolve().parent / "paren.pt"
MODEL_FILE = "model_state_dict.pt"
DATA_FILES = {"redwood": "redwood_data.json", "curriculum": "data.json"}
# From the shared folder's README; tests check the files against these.
SHA256 = {
    MODEL_FILE: "cb0acba5159758badf07fe054b1251f5433507bac46cb6b977474b8eb2db7c65",
    "data.json": "4747c1c8c839a41a557376ba4cbdc4ed8bcae9f45e452eca7f7cf0c635a0c282",
    "redwood_data.json": "ec171fc0ba6812d8799e35cbdbb03ffd2b1cf66bfa67a8e38b92789e4371c0f9",
}
_BUFFER_SUFFIXES = (".mask", ".IGNORE")  # old TL attention buffers; our model computes masks itself


class ExternalNotFound(ScrubError, FileNotFoundError):
    """The shared paren-balancer folder (or a file in it) is missing."""


def shared_dir() -> Path:
    """The shared folder: `$SCRUB_PAREN_DIR` if set, else `<repo>/../shared/data/paren-balancer`."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else SHARED_DIR


def external_available() -> bool:
    """True when the external model and both data files are present."""
    d = shared_dir()
    return all((d / f).is_file() for f in (MODEL_FILE, *DATA_FILES.values()))


def _shared_file(name: str) -> Path:
    path = shared_dir() / name
    if not path.is_file():
        raise ExternalNotFound(
            f"{path} not found. The external paren-balancer files live in the shared folder "
            f"(default {SHARED_DIR}); set ${ENV_VAR} to the folder holding {MODEL_FILE} and "
            f"{', '.join(DATA_FILES.values())} if it is elsewhere.")
    return path


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- tokenisation -----------------------------------------------------------
def tokenize(strings: Sequence[str]) -> Tensor:
    """`[start] + brackets + [end]`, padded with PAD to N_CTX: LongTensor `(n, 42)`.

    Vectorised through a fixed-width numpy string array (100k strings in well
    under a second).
    """
    strings = list(strings)
    n = len(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    if n and lengths.max() > MAX_LEN:
        i = int(lengths.argmax())
        raise DataError(f"string {i} has {lengths[i]} brackets; the paren model takes at most {MAX_LEN}.")
    codes = np.array(strings, dtype=f"U{MAX_LEN}").view(np.uint32).reshape(n, MAX_LEN)
    body = np.full((n, MAX_LEN), PAD, dtype=np.int64)
    body[codes == ord("(")] = OPEN
    body[codes == ord(")")] = CLOSE
    bad = (body == PAD) & (np.arange(MAX_LEN)[None, :] < lengths[:, None])
    if bad.any():
        i = int(bad.any(1).argmax())
        raise DataError(f"string {i} ({strings[i]!r}) holds a character other than '(' and ')'.")
    out = np.full((n, N_CTX), PAD, dtype=np.int64)
    out[:, 0] = START
    out[:, 1:-1] = body
    out[np.arange(n), lengths + 1] = END
    return torch.from_numpy(out)


def detokenize(tokens: Tensor) -> list[str]:
    """The bracket strings back from `tokenize` output (start/end/pad dropped)."""
    chars = np.array(["", "", "", "(", ")"], dtype=object)
    return ["".join(row) for row in chars[tokens.cpu().numpy()]]


def balanced_from_tokens(tokens: Tensor) -> Tensor:
    """Vectorised `is_balanced` over token rows: LongTensor `(n,)`, 1 = balanced."""
    steps = (tokens == OPEN).long() - (tokens == CLOSE).long()
    elevation = steps.cumsum(-1)
    return ((elevation[:, -1] == 0) & (elevation.min(-1).values >= 0)).long()


# --- our generator ----------------------------------------------------------
# Share of each kind in `make_dataset`. Two hard-negative kinds force a model
# to learn both tests: equal counts that dip negative (only the horizon test
# rejects them) and never-negative strings with more opens (only the count
# test rejects them).
MIX = {"balanced": 0.40, "equal_dips": 0.25, "nonneg_unequal": 0.20, "random": 0.15}


def _dyck(steps: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rotate equal-count rows to start just after their lowest point: never negative (cycle lemma)."""
    n, width = steps.shape
    pos = np.arange(width)[None, :]
    elevation = np.where(pos < lengths[:, None], steps.cumsum(1), np.iinfo(np.int64).max)
    low = elevation.argmin(1)
    idx = (low[:, None] + 1 + pos) % lengths[:, None]
    return np.where(pos < lengths[:, None], np.take_along_axis(steps, idx, 1), 0)


def _equal_counts(rng: np.random.Generator, lengths: np.ndarray, width: int) -> np.ndarray:
    """Rows of +1/-1 steps, half of each in the first `length` places, in random order, 0 after."""
    pos = np.arange(width)[None, :]
    keys = np.where(pos < lengths[:, None], rng.random((len(lengths), width)), 2.0)
    rank = keys.argsort(1).argsort(1)
    steps = np.where(rank < lengths[:, None] // 2, 1, -1)
    return np.where(pos < lengths[:, None], steps, 0)


def _pick(rng: np.random.Generator, allowed: np.ndarray) -> np.ndarray:
    """One random allowed column per row (every row must allow at least one)."""
    return np.where(allowed, rng.random(allowed.shape), -1.0).argmax(1)


def _flip_a_pair(rng: np.random.Generator, steps: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Dyck rows with one top-level matched pair reversed: equal counts, dips to exactly -1."""
    n, width = steps.shape
    pos = np.arange(width)[None, :]
    elevation = steps.cumsum(1)
    before = np.concatenate([np.zeros((n, 1), dtype=elevation.dtype), elevation[:, :-1]], 1)
    k = _pick(rng, (before == 0) & (pos < lengths[:, None]))
    j = ((pos > k[:, None]) & (elevation == 0)).argmax(1)  # where that pair closes
    out = steps.copy()
    out[np.arange(n), k] = -1
    out[np.arange(n), j] = 1
    return out


def _open_some_closes(rng: np.random.Generator, steps: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Dyck rows with m >= 1 closes turned to opens: never negative, ends at 2m > 0."""
    n, width = steps.shape
    m = np.minimum(rng.geometric(0.5, n), lengths // 2)
    keys = np.where(steps == -1, rng.random((n, width)), 2.0)
    rank = keys.argsort(1).argsort(1)
    return np.where(rank < m[:, None], 1, steps)


def make_dataset(n: int, seed: int) -> Dataset:
    """`n` labelled bracket strings (even lengths 2-40, as in the original data), deterministic in `seed`.

    Mix (see MIX): balanced strings; equal-count strings that go negative
    (half random orderings, half balanced strings with one pair reversed, so
    they dip to exactly -1); never-negative strings with more opens (ending at
    +2, +4, ...); uniformly random strings. Labels are recomputed from the strings.
    """
    if n < 1:
        raise DataError(f"make_dataset needs n >= 1, got {n}.")
    rng = np.random.default_rng(seed)
    lengths = 2 * rng.integers(1, MAX_LEN // 2 + 1, n)
    kinds = rng.choice(len(MIX), n, p=list(MIX.values()))
    half = rng.random(n) < 0.5
    shuffled = _equal_counts(rng, lengths, MAX_LEN)
    dyck = _dyck(shuffled, lengths)
    random = np.where(np.arange(MAX_LEN)[None, :] < lengths[:, None], rng.choice([-1, 1], (n, MAX_LEN)), 0)
    dips = np.where(half[:, None], shuffled, _flip_a_pair(rng, dyck, lengths))
    options = [dyck, dips, _open_some_closes(rng, dyck, lengths), random]
    steps = np.choose(kinds[:, None], options)
    body = np.select([steps == 1, steps == -1], [ord("("), ord(")")], 0).astype(np.uint8)
    raw = body.view(f"S{MAX_LEN}").ravel().astype(f"U{MAX_LEN}").tolist()
    tokens = tokenize(raw)
    return Dataset(tokens, balanced_from_tokens(tokens), raw, name=f"paren-generated-seed{seed}")


# --- external data and models -----------------------------------------------
def load_external_data(which: Literal["redwood", "curriculum"] = "redwood", n: Optional[int] = None) -> Dataset:
    """The external data set `which` (first `n` rows, all if None); labels 1 = balanced."""
    if which not in DATA_FILES:
        raise DataError(f"which={which!r}: use one of {sorted(DATA_FILES)}.")
    path = _shared_file(DATA_FILES[which])
    rows = json.loads(path.read_text())
    rows = rows if n is None else rows[:n]
    raw = [s for s, _ in rows]
    labels = torch.tensor([int(b) for _, b in rows], dtype=torch.long)
    tokens = tokenize(raw)
    wrong = (balanced_from_tokens(tokens) != labels).nonzero()
    if len(wrong):
        i = int(wrong[0])
        raise DataError(f"{path}: row {i} ({raw[i]!r}) is labelled {bool(labels[i])}, which is wrong; "
                        "the file is corrupt, compare its sha256 with the README.")
    return Dataset(tokens, labels, raw, name=f"paren-{which}")


def from_tl_state_dict(state_dict: Mapping[str, Tensor], source: str = "state dict",
                       cfg: TransformerConfig = CONFIG) -> ScrubTransformer:
    """A ScrubTransformer from an old TransformerLens HookedTransformer state dict.

    Keys map one to one (our parameter names are TL's); TL's attention buffers
    are dropped. Every other key must be used and every shape must match, so a
    different architecture fails here rather than loading half a model.
    """
    if not isinstance(state_dict, Mapping):
        raise AdapterError(f"{source}: expected a dict of tensors, got {type(state_dict).__name__}.")
    weights = {k: v for k, v in state_dict.items() if not k.endswith(_BUFFER_SUFFIXES)}
    model = ScrubTransformer(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [f"{k}: file {tuple(weights[k].shape)}, model {tuple(expected[k].shape)}"
             for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    problems = ([f"missing keys {missing}"] if missing else []) + \
               ([f"unexpected keys {unexpected}"] if unexpected else []) + \
               ([f"shape mismatches [{'; '.join(wrong)}]"] if wrong else [])
    if problems:
        raise AdapterError(f"{source} does not fit the paren-balancer architecture ({cfg.n_layers} layers, "
                           f"d_model={cfg.d_model}, {cfg.n_heads} heads): {', '.join(problems)}. "
                           "Check that the file is the paren-balancer state dict (sha256 in the shared README).")
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval()


def load_external_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> ScrubTransformer:
    """The external (Redwood / ARENA) paren-balancer, from the shared folder unless `path` is given."""
    path = _shared_file(MODEL_FILE) if path is None else Path(path)
    if not path.is_file():
        raise ExternalNotFound(f"{path} not found; pass the path of the paren-balancer state dict.")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors vary by torch version
        raise AdapterError(f"{path} could not be read as a torch state dict ({type(e).__name__}: {e}).") from e
    return from_tl_state_dict(state_dict, source=str(path)).to(device)


def load_model(device: str | torch.device = "cpu") -> ScrubTransformer:
    """Our own trained paren-balancer (`scripts/train_paren.py`), shipped with the package."""
    if not CHECKPOINT.is_file():
        raise ExternalNotFound(f"{CHECKPOINT} not found; create it with `python scripts/train_paren.py`.")
    return load_checkpoint(CHECKPOINT, device)


def trim(tokens: Tensor) -> Tensor:
    """Drop the all-pad tail columns. Position-0 logits do not change: pad keys are
    masked and positions are absolute, so shorter batches just run faster."""
    width = int((tokens != PAD).sum(1).max())
    return tokens[:, :width]


def classify(model: ScrubTransformer, tokens: Tensor, batch_size: int = 2048) -> Tensor:
    """Position-0 logits `(n, 2)` for token rows, batched by length (sorted, trimmed) for speed."""
    device = next(model.parameters()).device
    order = (tokens != PAD).sum(1).argsort()
    out = torch.empty(len(tokens), model.cfg.vocab_out)
    with torch.no_grad():
        for i in range(0, len(tokens), batch_size):
            idx = order[i:i + batch_size]
            out[idx] = model(trim(tokens[idx]).to(device))[:, 0].float().cpu()
    return out


def accuracy(model: ScrubTransformer, data: Dataset, batch_size: int = 2048) -> float:
    """Share of `data` the model classifies right (argmax of position-0 logits; 1 = balanced)."""
    if data.labels is None:
        raise DataError(f"{data.name} has no labels; accuracy needs labels (1 = balanced).")
    return float((classify(model, data.inputs, batch_size).argmax(-1) == data.labels.cpu()).float().mean())


# --- per-datum features (one bracket string in, one value out) --------------
def count_diff(s: str) -> int:
    """Opens minus closes."""
    return s.count("(") - s.count(")")


def is_equal_count(s: str) -> bool:
    """The count test: as many opens as closes."""
    return count_diff(s) == 0


def first_negative_index(s: str) -> int:
    """Index of the first bracket after which the elevation is below zero; -1 if it never is."""
    elevation = 0
    for i, c in enumerate(s):
        elevation += 1 if c == "(" else -1
        if elevation < 0:
            return i
    return -1


def elevation_never_negative(s: str) -> bool:
    """The horizon test: reading left to right, closes never outnumber opens."""
    return first_negative_index(s) == -1


def first_goes_negative(s: str) -> bool:
    """The horizon test failing: the elevation drops below zero somewhere (not elevation_never_negative)."""
    return first_negative_index(s) != -1


def starts_with_open(s: str) -> bool:
    return s.startswith("(")


def is_balanced(s: str) -> bool:
    """Both tests pass."""
    return is_equal_count(s) and elevation_never_negative(s)
