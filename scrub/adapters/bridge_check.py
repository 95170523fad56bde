"""A bridge is checked once, on its own forward pass, before it is scrubbed.

The engine relies on two facts about every adapted model; for a bridge they
are verified on a few random sequences rather than assumed:

1. the stream each reader site reads is the sum of the outputs of its
   upstream sites plus a constant that does not depend on the data (the
   biases): path patching by differences is then exact;
2. evaluating a site on the streams of an ordinary forward pass gives the
   site's own output there (heads, glue sites, MLPs and the logits), so the
   adapter's use of the bridge's modules, captured attention arguments and
   logit transform reproduces the model.

A model that fails either is refused with the failing site named.
"""

from __future__ import annotations

import torch

from scrub.adapters.base import OUT, RESID, SiteRequest
from scrub.errors import AdapterError, InterventionError
from scrub.graph import INPUT

N_DATA, N_POS = 3, 5


def check_decomposition(adapter) -> None:
    model, graph = adapter.model, adapter.graph
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, adapter.layout.d_vocab, (N_DATA, N_POS), generator=g).to(adapter.device)
    readers = [s for s in graph.sites if s.ports]
    wants = {(OUT, s.name) for s in graph.sites} | {(RESID, s.name) for s in readers}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            try:
                got = adapter.plain(tokens, wants)
            except InterventionError as exc:
                raise AdapterError(f"this bridge's forward pass does not go through the hooks scrub reads: {exc}") \
                    from None
            failures = _additivity(graph, got) + _evaluations(adapter, readers, got)
    finally:
        model.train(was_training)
    if failures:
        raise AdapterError(
            f"this {type(model.blocks[0].attn).__name__} bridge does not decompose the way scrub evaluates it: "
            + "; ".join(failures[:3]) + ". scrub refuses it rather than scrub a different model.")


def _tolerance(t: torch.Tensor) -> float:
    rel = 1e-4 if t.dtype in (torch.float32, torch.float64) else 2e-2
    return rel * max(1.0, t.abs().max().item())


def _additivity(graph, got: dict) -> list[str]:
    out = []
    for s in graph.sites:
        if not s.ports:
            continue
        port = next(p for p in s.ports if graph.port(p).additive)
        total = sum(got[(OUT, u.name)] for u in graph.upstream(s, port))
        const = got[(RESID, graph.read_point(s).name)] - total
        spread = (const - const[:1]).abs().max().item()
        if spread > _tolerance(got[(RESID, graph.read_point(s).name)]):
            out.append(f"the input of {s.name} is not the sum of its upstream sites' outputs plus a constant "
                       f"(off by up to {spread:.3g} between data)")
    return out


def _evaluations(adapter, readers, got: dict) -> list[str]:
    graph = adapter.graph
    requests = [SiteRequest(s, {p: got[(RESID, graph.read_point(s).name)] for p in s.ports}) for s in readers
                if s.kind != INPUT]
    values = adapter.evaluate(requests)
    out = []
    for r, value in zip(requests, values):
        expected = got[(OUT, r.site.name)]
        err = (value - expected).abs().max().item()
        if err > _tolerance(expected):
            out.append(f"{r.site.name} evaluated on its own input differs from its output by {err:.3g}")
    return out
