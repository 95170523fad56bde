"""Models of your own for docs/your-model.md, built by functions a spec can name
(`model: {function: my_models.tiny_attention}`): this module sits beside the
specs, and a spec's folder is on the import path while the spec loads."""

from types import SimpleNamespace

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import scrub
from scrub import Dataset


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_result = HookPoint()  # (batch, pos, head, d_model): each head's output


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_resid_pre, self.hook_resid_post = HookPoint(), HookPoint()
        self.hook_q_input, self.hook_k_input, self.hook_v_input = HookPoint(), HookPoint(), HookPoint()
        self.attn = _Attention()


class TinyAttention(HookedRootModule):
    """A one-layer, attention-only transformer written on TransformerLens' HookedRootModule with TL's hook
    names, per-head q/k/v inputs and results included: what research code built on HookPoints looks like."""

    def __init__(self, n_heads: int = 2, d_model: int = 32, d_head: int = 16, vocab: int = 100, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def weights(*shape, scale):
            return nn.Parameter(torch.randn(*shape, generator=g) * scale)

        self.cfg = SimpleNamespace(n_layers=1, n_heads=n_heads, attn_only=True, d_model=d_model, d_head=d_head,
                                   d_vocab=vocab, pad_token_id=None, attention_dir="causal")
        self.W_E, self.W_pos = weights(vocab, d_model, scale=1.0), weights(16, d_model, scale=1.0)
        self.W_Q, self.W_K, self.W_V = (weights(n_heads, d_model, d_head, scale=d_model ** -0.5) for _ in range(3))
        self.W_O = weights(n_heads, d_head, d_model, scale=d_head ** -0.5)
        self.W_U = weights(d_model, vocab, scale=d_model ** -0.5)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.blocks = nn.ModuleList([_Block()])
        self.setup()  # HookedRootModule: index the hook points by name

    def forward(self, tokens):
        B, P = tokens.shape
        block = self.blocks[0]
        resid = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(self.W_pos[:P].expand(B, P, -1))
        resid = block.hook_resid_pre(resid)
        per_head = resid[:, :, None].expand(-1, -1, self.cfg.n_heads, -1)  # (B, P, head, d_model)
        q, k, v = (torch.einsum("bphm,hmd->bphd", hook(per_head), W) for hook, W in
                   ((block.hook_q_input, self.W_Q), (block.hook_k_input, self.W_K), (block.hook_v_input, self.W_V)))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.cfg.d_head ** 0.5
        scores = scores.masked_fill(torch.ones(P, P, dtype=torch.bool).triu(1), float("-inf"))
        z = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
        result = block.attn.hook_result(torch.einsum("bqhd,hdm->bqhm", z, self.W_O))
        return block.hook_resid_post(resid + result.sum(2)) @ self.W_U


def tiny_attention(seed: int = 0) -> TinyAttention:
    return TinyAttention(seed=seed).eval()


class TwoPaths(nn.Module):
    """out = a(x) + b(x): a plain torch module, no hooks."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Linear(3, 1)
        self.b = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.a(x) + self.b(x)


def two_paths(seed: int = 0):
    """The module with its additive structure declared: its terms become sites (checked against its forward)."""
    model = TwoPaths(seed)
    return scrub.additive(model, terms={"a": model.a, "b": model.b})


def two_paths_data(n: int = 500, seed: int = 0) -> Dataset:
    """Inputs, labelled by the model itself."""
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return Dataset(x, labels=TwoPaths(seed)(x))
