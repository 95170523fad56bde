"""The naive scrub's model operations expressed with nnsight (a baseline for scripts/bench.py).

Same interface as the reference's `ScrubTransformerOps` (plain values of every
site, and one site evaluated on given inputs), but every forward pass is an
nnsight trace that saves and writes activations by module path. nnsight reads
the source of each `with` block, so this lives in a file.
"""

from __future__ import annotations

import copy

import torch
from nnsight import NNsight


class NNsightOps:
    positional = True

    def __init__(self, model):
        from reference import transformer_sites

        self.model = copy.deepcopy(model).eval()
        self.model.set_use_split_qkv_input(True)
        self.model.set_use_attn_result(True)
        self.nn = NNsight(self.model)
        cfg = model.cfg
        self.padded = cfg.pad_token_id is not None
        self.last = cfg.n_layers - 1
        self.sites = transformer_sites(cfg.n_layers, cfg.n_heads, not cfg.attn_only, self.padded)
        self.cfg = cfg

    def plain(self, tokens):
        m, cfg = self.nn, self.cfg
        saved = {}
        with torch.no_grad(), m.trace(tokens):
            saved[("out", "embed")] = m.hook_embed.output.save()
            saved[("out", "pos_embed")] = m.hook_pos_embed.output.save()
            for L in range(cfg.n_layers):
                block = m.blocks[L]
                saved[("resid", L, "pre")] = block.hook_resid_pre.output.save()
                saved[("result", L)] = block.attn.hook_result.output.save()
                if not cfg.attn_only:
                    saved[("resid", L, "mid")] = block.hook_resid_mid.output.save()
                    saved[("mlp", L)] = block.hook_mlp_out.output.save()
            saved[("resid", "final")] = m.blocks[self.last].hook_resid_post.output.save()
            saved[("out", "output")] = m.output.save()
        out = {("out", "embed"): saved[("out", "embed")], ("out", "pos_embed"): saved[("out", "pos_embed")],
               ("out", "output"): saved[("out", "output")], ("resid", "output"): saved[("resid", "final")]}
        for s in self.sites:
            if s.kind == "head":
                out[("out", s.name)] = saved[("result", s.layer)][:, :, s.head]
                out[("resid", s.name)] = saved[("resid", s.layer, "pre")]
            elif s.kind == "mlp":
                out[("out", s.name)] = saved[("mlp", s.layer)]
                out[("resid", s.name)] = saved[("resid", s.layer, "mid")]
        return out

    def evaluate(self, site, inputs, mask_tokens):
        m = self.nn
        N, P = next(iter(inputs.values())).shape[:2]
        tokens = mask_tokens if mask_tokens is not None else torch.zeros(N, P, dtype=torch.long)
        with torch.no_grad(), m.trace(tokens):
            if site.kind == "head":
                block = m.blocks[site.layer]
                block.hook_q_input.output[:, :, site.head] = inputs["q"]
                block.hook_k_input.output[:, :, site.head] = inputs["k"]
                block.hook_v_input.output[:, :, site.head] = inputs["v"]
                got = block.attn.hook_result.output[:, :, site.head].save()
            elif site.kind == "mlp":
                block = m.blocks[site.layer]
                block.hook_mlp_in.output[:] = inputs["in"]
                got = block.hook_mlp_out.output.save()
            else:
                m.blocks[self.last].hook_resid_post.output[:] = inputs["in"]
                got = m.output.save()
        return got
