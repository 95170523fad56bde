"""Model adapters: every supported kind of model seen as named sites.

`adapt(model)` picks the adapter; `list_sites(model)` prints what a hypothesis
can name.
"""

from __future__ import annotations

import torch

from scrub.adapters.additive import AdditiveAdapter, additive
from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.bridge import BridgeAdapter
from scrub.adapters.hooked import HookedAdapter, HookLayout
from scrub.adapters.scrub_transformer import ScrubTransformerAdapter
from scrub.errors import AdapterError
from scrub.models.transformer import ScrubTransformer


def adapt(model, layout: HookLayout | None = None) -> Adapter:
    """The adapter for `model`: our ScrubTransformer, a TransformerLens
    TransformerBridge, any HookedRootModule with TL-style per-head hooks, or an
    adapter already made (e.g. by `additive(...)`)."""
    if isinstance(model, Adapter):
        return model
    if isinstance(model, ScrubTransformer) and layout is None:
        return ScrubTransformerAdapter(model)
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # pragma: no cover - transformer-lens is a dependency
        TransformerBridge = ()
    if TransformerBridge and isinstance(model, TransformerBridge):
        return BridgeAdapter(model)
    from transformer_lens import HookedRootModule

    if isinstance(model, HookedRootModule):
        return HookedAdapter(model, layout)
    if isinstance(model, torch.nn.Module):
        raise AdapterError(f"{type(model).__name__} is a plain torch module: declare its additive structure with "
                           "scrub.additive(model, terms={'a': model.a, ...}) and pass that instead.")
    raise AdapterError(f"cannot scrub a {type(model).__name__}; pass a torch model or an adapter.")


def list_sites(model) -> str:
    """A table of the sites a hypothesis about `model` can name."""
    return adapt(model).graph.table()


__all__ = ["Adapter", "SiteRequest", "adapt", "list_sites", "additive", "AdditiveAdapter", "BridgeAdapter",
           "HookedAdapter", "HookLayout", "ScrubTransformerAdapter"]
