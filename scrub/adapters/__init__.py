"""Model adapters: every supported kind of model seen as named sites.

`adapt(model)` asks each adapter in `ADAPTERS`, in order, whether it accepts
the model; `list_sites(model)` prints what a hypothesis can name. A new model
family is one adapter file (a subclass of `Adapter`) and one line here.
"""

from __future__ import annotations

import torch

from scrub.adapters.additive import AdditiveAdapter, additive
from scrub.adapters.base import Adapter, SiteRequest
from scrub.adapters.bridge import BridgeAdapter
from scrub.adapters.hooked import HookedAdapter
from scrub.adapters.scrub_transformer import ScrubTransformerAdapter
from scrub.adapters.transformer_sites import HookLayout
from scrub.errors import AdapterError

# Asked in order: the first adapter that accepts a model adapts it.
ADAPTERS: list[type[Adapter]] = [ScrubTransformerAdapter, BridgeAdapter, HookedAdapter]


def adapt(model, layout: HookLayout | None = None) -> Adapter:
    """The adapter for `model`: our ScrubTransformer, a TransformerLens TransformerBridge, any
    HookedRootModule with TL-style per-head hooks (`layout` names its hooks), or an adapter already
    made (e.g. by `additive(...)`)."""
    if isinstance(model, Adapter):
        return model
    if layout is not None:
        return HookedAdapter(model, layout)
    for kind in ADAPTERS:
        if kind.accepts(model):
            return kind(model)
    if isinstance(model, torch.nn.Module):
        raise AdapterError(f"{type(model).__name__} is a plain torch module: declare its additive structure with "
                           "scrub.additive(model, terms={'a': model.a, ...}) and pass that instead.")
    raise AdapterError(f"cannot scrub a {type(model).__name__}; pass a torch model or an adapter.")


def list_sites(model) -> str:
    """A table of the sites a hypothesis about `model` can name."""
    return adapt(model).graph.table()


__all__ = ["ADAPTERS", "Adapter", "SiteRequest", "adapt", "list_sites", "additive", "AdditiveAdapter",
           "BridgeAdapter", "HookedAdapter", "HookLayout", "ScrubTransformerAdapter"]
