"""Hook plumbing the TransformerLens-style adapters share.

Hooks that an adapter plans must fire: `run_hooked` records each firing and
raises `InterventionError` for any that did not, naming the hook. `plain_values`
is an ordinary forward pass that captures wanted values at hook points and
stops as soon as the deepest one has fired.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from torch import Tensor

from scrub.errors import InterventionError


class StopForward(Exception):
    """Raised by a hook once everything wanted is captured, to skip later layers."""


HookFn = Callable[[Tensor], Optional[Tensor]]


def run_hooked(model, run: Callable[[], Tensor], hooks: list[tuple[str, HookFn]],
               stop_after: Optional[str] = None) -> Optional[Tensor]:
    """Run `run()` with `hooks` on `model`; every hook must fire exactly once.

    A hook fn receives the activation and returns a replacement or None.
    With `stop_after`, the forward pass is cut short once that hook has fired
    (and `None` is returned instead of the model output).
    """
    fired: dict[str, int] = {name: 0 for name, _ in hooks}
    by_name: dict[str, list[HookFn]] = {}
    for name, fn in hooks:
        by_name.setdefault(name, []).append(fn)

    def make(name: str, fns: list[HookFn]):
        def hook(act: Tensor, hook=None):
            fired[name] += 1
            for fn in fns:
                new = fn(act)
                if new is not None:
                    if new.shape != act.shape:
                        raise InterventionError(f"hook {name!r} tried to write shape {tuple(new.shape)} "
                                                f"over an activation of shape {tuple(act.shape)}.")
                    act = new
            if name == stop_after:
                raise StopForward
            return act
        return hook

    missing_names = [n for n in by_name if n not in model.hook_dict]
    if missing_names:
        raise InterventionError(f"the model has no hook point(s) {missing_names}; the adapter's hook names do "
                                "not match this model. Check the adapter's layout settings.")
    result = None
    try:
        with model.hooks(fwd_hooks=[(n, make(n, fns)) for n, fns in by_name.items()]):
            result = run()
    except StopForward:
        result = None
    bad = {n: c for n, c in fired.items() if c != 1}
    if bad:
        raise InterventionError("planned interventions did not fire exactly once: " + ", ".join(
            f"{n!r} fired {c} times" for n, c in bad.items()) + ". The model's forward pass does not go through "
            "these hook points as the adapter expects.")
    return result


def capture(store: dict, key) -> HookFn:
    """A hook fn that stores the activation under `key`."""
    def fn(act: Tensor):
        store[key] = act
        return None
    return fn


def plain_values(model, graph, inputs: Tensor, wants: Iterable[tuple[str, str]],
                 hook_for: Callable, read: Callable, stop_early: bool = True, forward_kw: Optional[dict] = None) -> dict:
    """One forward pass capturing every wanted `(what, site)`.

    hook_for(what, site) -> (hook name, firing order); read(what, site, activation) -> the value
    (e.g. one head's slice). The model's own logits answer `("out", "output")`. forward_kw: keyword
    arguments of the model's forward."""
    wants = set(wants)
    store: dict = {}
    order: dict = {}
    want_logits = False
    for what, name in wants:
        site = graph.site(name)
        if what == "out" and site.kind == "output":
            want_logits = True
        else:
            hook, rank = hook_for(what, site)
            order[hook] = rank
    hooks = [(hook, capture(store, hook)) for hook in order]
    stop = None if want_logits or not order or not stop_early else max(order, key=order.get)
    logits = run_hooked(model, lambda: model(inputs, **(forward_kw or {})), hooks, stop_after=stop)
    out = {}
    for what, name in wants:
        site = graph.site(name)
        if what == "out" and site.kind == "output":
            out[(what, name)] = logits
        else:
            out[(what, name)] = read(what, site, store[hook_for(what, site)[0]])
    return out
