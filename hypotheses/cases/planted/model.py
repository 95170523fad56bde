"""Planted circuits: small models whose mechanism is known by construction.

Each builder returns the model (already adapted where the model is a plain
torch module) and a dataset, so the toolkit's verdicts can be checked against
the ground truth:

- `cancelling_terms`: out = a(x) + b(x) - c(x) with b close to c. "Only a
  matters" looks perfect under one shared other-inputs draw; b and c are large
  alone.
- `balanced_terms(k)`: out = a + u_1 + ... + u_{k-1} - (u_1 + ... + u_{k-1}),
  declared as k + 1 terms: the k terms after a cancel together while no
  smaller group of them does (k = 3, 4); with `cancel=False` the last term is
  an unrelated large function instead (a control: large parts, no cancelling).
- `small_extras`: out = a + small terms (a control: "only a" survives, and
  nothing it leaves out cancels).
- `cancelling_heads`: a one-layer transformer copying the previous token with
  head 0.0, plus heads 0.1 and 0.2 that write large, exactly opposite vectors
  (like a name mover and its backup/negative head). `writer_heads` takes any
  list of writes: two positive heads and one negative head that cancel
  (`three_heads`), or unrelated writes (`unrelated_heads`, a control).
- `head_and_mlp`: the same copier plus head 0.1, whose large write an MLP
  reading the head's output cancels exactly.
- `xor_and_linear`: a one-hidden-layer network fit to XOR plus a linear target,
  with or without its hidden activation (the "missing activation" bug: the
  network still trains, fits the linear target and silently fails XOR).
- `sine`: a model computing sin(x), scored on data whose labels are 0: the
  hypothesis "the output depends only on |x - pi|" recovers all the loss
  (sin(2pi - x) = -sin x has the same squared error) while computing a
  different function.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from scrub.adapters.additive import AdditiveAdapter, additive
from scrub.data import Dataset
from scrub.models.transformer import ScrubTransformer, TransformerConfig


# --- cancelling terms -------------------------------------------------------------------

class ThreeTerms(nn.Module):
    """out = a(x) + b(x) - c(x); c is b plus a small perturbation `gap`."""

    def __init__(self, gap: float = 0.01, seed: int = 0, d_in: int = 4, scale: float = 6.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Linear(d_in, 1)
        self.b = nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 1))
        self.c = nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 1))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.b[2].weight.mul_(scale)
            for pc, pb in zip(self.c.parameters(), self.b.parameters()):
                pc.copy_(pb + gap * torch.randn(pb.shape, generator=g) * pb.abs().mean())

    def forward(self, x):
        return self.a(x) + self.b(x) - self.c(x)


def cancelling_terms(gap: float = 0.01, n: int = 500, seed: int = 0) -> tuple[AdditiveAdapter, Dataset]:
    """The three-term model (declared additive) and data labelled by the model itself."""
    model = ThreeTerms(gap, seed)
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x).squeeze(-1)
    return additive(model, {"a": model.a, "b": model.b, "c": (model.c, -1.0)}), Dataset(x, labels=y, name="three terms")


class BalancedTerms(nn.Module):
    """out = a(x) + u_1(x) + ... + u_m(x) + last(x), with last = -(u_1 + ... + u_m) when `cancel`, else an
    unrelated function of the same size; `scale` multiplies every u (and the unrelated last)."""

    def __init__(self, m: int, cancel: bool = True, seed: int = 0, d_in: int = 4, scale: float = 6.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        mk = lambda: nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 1))  # noqa: E731
        self.a = nn.Linear(d_in, 1)
        self.parts = nn.ModuleList([mk() for _ in range(m)])
        self.other = mk()
        self.cancel = cancel
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            for u in [*self.parts, self.other]:
                u[2].weight.mul_(scale)

    def last(self, x):
        return -sum(u(x) for u in self.parts) if self.cancel else self.other(x)

    def forward(self, x):
        return self.a(x) + sum(u(x) for u in self.parts) + self.last(x)


TERM_NAMES = "bcdefgh"


def balanced_terms(k: int = 3, cancel: bool = True, n: int = 500, seed: int = 0, scale: float = 6.0
                   ) -> tuple[AdditiveAdapter, Dataset]:
    """The model with k terms after a (b, c, ...; the last is minus the sum of the others when `cancel`),
    declared additive, and data labelled by the model itself."""
    model = BalancedTerms(k - 1, cancel, seed, scale=scale)
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x).squeeze(-1)
    terms = {"a": model.a, **{TERM_NAMES[i]: model.parts[i] for i in range(k - 1)}, TERM_NAMES[k - 1]: model.last}
    name = f"{k} terms {'that cancel' if cancel else 'that do not cancel'}"
    return additive(model, terms), Dataset(x, labels=y, name=name)


def small_extras(n: int = 500, seed: int = 0) -> tuple[AdditiveAdapter, Dataset]:
    """out = a + b + c with b and c small (scaled by 0.01 where `balanced_terms` scales by 6) and unrelated."""
    return balanced_terms(3, cancel=False, n=n, seed=seed, scale=0.01)


# --- heads that cancel ----------------------------------------------------------------------

def cancelling_heads(vocab: int = 8, seq: int = 6, n: int = 600, seed: int = 0, scale: float = 6.0
                     ) -> tuple[ScrubTransformer, Dataset]:
    """Head 0.0 copies the previous token; heads 0.1 and 0.2 write scale * M and -scale * M (they cancel)."""
    M = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed))
    return writer_heads([M, -M], vocab, seq, n, seed, scale)


def three_heads(vocab: int = 8, seq: int = 6, n: int = 600, seed: int = 0, scale: float = 6.0
                ) -> tuple[ScrubTransformer, Dataset]:
    """Two positive heads (0.1: M1, 0.2: M2) and one negative head (0.3: -(M1 + M2)) cancel at the output."""
    g = torch.Generator().manual_seed(seed)
    M1, M2 = torch.randn(vocab, vocab, generator=g), torch.randn(vocab, vocab, generator=g)
    return writer_heads([M1, M2, -(M1 + M2)], vocab, seq, n, seed, scale)


def unrelated_heads(vocab: int = 8, seq: int = 6, n: int = 600, seed: int = 0, scale: float = 6.0
                    ) -> tuple[ScrubTransformer, Dataset]:
    """A control: heads 0.1, 0.2, 0.3 write large, unrelated vectors (nothing cancels)."""
    g = torch.Generator().manual_seed(seed)
    return writer_heads([torch.randn(vocab, vocab, generator=g) for _ in range(3)], vocab, seq, n, seed, scale)


def head_and_mlp(vocab: int = 8, seq: int = 6, n: int = 600, seed: int = 0, scale: float = 6.0
                 ) -> tuple[ScrubTransformer, Dataset]:
    """Head 0.1 writes scale * M @ (mean token so far) into the copy space and the mean itself into a spare
    space; the MLP reads the spare space and writes -scale * M @ it: the head and the MLP cancel."""
    M = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed))
    return writer_heads([M], vocab, seq, n, seed, scale, mlp_cancels_head=1)


def writer_heads(writes: list, vocab: int = 8, seq: int = 6, n: int = 600, seed: int = 0, scale: float = 6.0,
                 mlp_cancels_head: Optional[int] = None) -> tuple[ScrubTransformer, Dataset]:
    """One attention layer, no LayerNorm, hand-set weights.

    Residual layout: [token one-hot (vocab) | position one-hot (seq) | copy space (vocab) | spare (vocab)].
    Head 0.0 attends from each position to the previous one (positional q/k) and copies the token
    one-hot into the copy space, which the unembedding reads: it predicts the previous token.
    Head 0.h (h >= 1) attends uniformly and writes `scale * writes[h-1] @ token` into the copy space.
    With `mlp_cancels_head=h`, head 0.h also writes the token mean into the spare space and a ReLU MLP
    writes minus head 0.h's copy-space write from it. Labels: next-token loss at every position after
    the first (the next token is the previous one: sequences alternate a, b, a, b).
    """
    d = 3 * vocab + seq
    tok, pos, cp, sp = 0, vocab, vocab + seq, 2 * vocab + seq
    cfg = TransformerConfig(n_layers=1, d_model=d, n_heads=1 + len(writes), d_head=vocab + seq, d_vocab=vocab,
                            n_ctx=seq, d_mlp=None if mlp_cancels_head is None else vocab, act_fn="relu",
                            normalization=None, attention_dir="causal", unembed_bias=False, seed=seed)
    model = ScrubTransformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E[:, tok:tok + vocab] = torch.eye(vocab)
        model.pos_embed.W_pos[:, pos:pos + seq] = torch.eye(seq)
        attn = model.blocks[0].attn
        dh = vocab + seq
        # head 0.0: query at position t looks for key at position t-1
        for t in range(1, seq):
            attn.W_Q[0, pos + t, vocab + t - 1] = 1.0
        for t in range(seq):
            attn.W_K[0, pos + t, vocab + t] = 1.0
        attn.W_Q.mul_(math.sqrt(dh) * 20)  # sharp attention
        attn.W_V[0, tok:tok + vocab, :vocab] = torch.eye(vocab)
        attn.W_O[0, :vocab, cp:cp + vocab] = torch.eye(vocab) * 10
        # heads 0.1, 0.2, ...: uniform attention (zero scores), large writes of W @ token
        for h, W in enumerate(writes, start=1):
            attn.W_V[h, tok:tok + vocab, :vocab] = torch.eye(vocab)
            attn.W_O[h, :vocab, cp:cp + vocab] = scale * W
        if mlp_cancels_head is not None:
            h = mlp_cancels_head
            attn.W_O[h, :vocab, sp:sp + vocab] = torch.eye(vocab)  # the token mean, for the MLP (all >= 0)
            mlp = model.blocks[0].mlp
            mlp.W_in[sp:sp + vocab, :] = torch.eye(vocab)
            mlp.W_out[:, cp:cp + vocab] = -scale * writes[h - 1]
        model.unembed.W_U[cp:cp + vocab, :] = torch.eye(vocab)
    gen = torch.Generator().manual_seed(seed + 1)
    a = torch.randint(0, vocab, (n,), generator=gen)
    b = (a + torch.randint(1, vocab, (n,), generator=gen)) % vocab
    toks = torch.where(torch.arange(seq)[None, :] % 2 == 0, a[:, None], b[:, None])
    mask = torch.ones(n, seq, dtype=torch.bool)
    mask[:, 0] = False  # position 0 cannot know the previous token
    mask[:, -1] = False  # nothing to predict after the last token
    return model, Dataset(toks, fields={"loss_mask": mask}, name="alternating pairs")


# --- missing activation -----------------------------------------------------------------

class TwoHeads(nn.Module):
    """x (2 bits + jitter) -> hidden -> [xor, linear]."""

    def __init__(self, hidden: int, activation: bool):
        super().__init__()
        self.inp = nn.Linear(2, hidden)
        self.act = nn.ReLU() if activation else nn.Identity()
        self.out = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.out(self.act(self.inp(x)))


def xor_data(n: int, seed: int, jitter: float = 0.02) -> Dataset:
    """Bits x1, x2 with small jitter; labels [x1 XOR x2, 0.5 x1 - 0.3 x2 + 0.2]; raw = the bits."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (n, 2), generator=g).float()
    x = bits + jitter * torch.randn(n, 2, generator=g)
    y = torch.stack([(bits[:, 0] != bits[:, 1]).float(), 0.5 * bits[:, 0] - 0.3 * bits[:, 1] + 0.2], -1)
    return Dataset(x, labels=y, raw=[tuple(int(v) for v in b) for b in bits], name="xor+linear")


def xor_and_linear(activation: bool, seed: int = 0, steps: int = 1500) -> tuple[AdditiveAdapter, Dataset]:
    """Train the network (CPU, about a second) and return it declared as one term with a readout.

    The output site reads the hidden pre-activations `inp(x)` (one term, "hidden"); the readout
    applies the activation and the output layer. Losses are MSE on both targets together."""
    torch.manual_seed(seed)
    model = TwoHeads(16, activation)
    data = xor_data(2000, seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    with torch.enable_grad():  # callers may have switched gradients off
        for _ in range(steps):
            opt.zero_grad()
            loss = ((model(data.inputs) - data.labels) ** 2).mean()
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    adapter = additive(model, {"hidden": model.inp}, readout=lambda h: model.out(model.act(h)))
    return adapter, xor_data(1000, seed + 100)


# --- sine ---------------------------------------------------------------------------------

class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


def sine(n: int = 400, near: float = 0.6) -> tuple[AdditiveAdapter, Dataset, list[int]]:
    """sin(x) on a pool symmetric about pi, labels 0; returns (adapter, pool, reference indices).

    The reference data are the x within `near` of 0 or 2pi (where |sin x| is small); the pool
    covers [0, 2pi) and holds 2pi - x for every x. So the random baseline (x anywhere) does much
    worse than the model, and agreeing on |x - pi| maps x to x or 2pi - x."""
    half = torch.linspace(0.0, math.pi, n // 2 + 1)[:-1]
    x = torch.cat([half, 2 * math.pi - half.flip(0)])[:n].unsqueeze(-1)
    model = Sine()
    data = Dataset(x, labels=torch.zeros(len(x)), raw=[round(abs(v - math.pi), 6) for v in x.squeeze(-1).tolist()],
                   name="sine, labels 0")
    xs = x.squeeze(-1)
    reference = torch.nonzero((xs < near) | (xs > 2 * math.pi - near)).squeeze(-1).tolist()
    return additive(model, {"sin": model}), data, reference
