"""Model graphs: a model seen as named sites and the edges between them.

A site's output adds into the residual stream that later sites read (except
non-additive inputs such as a padding mask). A reader site reads, through each
of its ports, the sum of the outputs of every additive site of a lower stage:
an attention head reads three such sums (q, k, v), an MLP or the output one
(`in`). Input sites (embeddings, or a toy model's components) read the datum.

Names: `embed`, `pos_embed`, `head.L.H`, `mlp.L`, `output`, and `pad_mask`
for models that mask padding keys. Toy models name their components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from scrub.errors import SiteError, did_you_mean

INPUT, HEAD, MLP, OUTPUT = "input", "head", "mlp", "output"


@dataclass(frozen=True)
class Site:
    name: str
    kind: str
    stage: int  # evaluation order: a site reads the additive sites of lower stages
    ports: tuple[str, ...] = ()
    layer: Optional[int] = None
    head: Optional[int] = None
    additive: bool = True
    description: str = ""


class ModelGraph:
    """The sites of one model, with lookups that explain mistakes."""

    def __init__(self, sites: Iterable[Site], positional: bool = True, n_layers: int = 0, n_heads: int = 0,
                 causal: bool = False):
        self.sites: tuple[Site, ...] = tuple(sorted(sites, key=lambda s: s.stage))
        self.by_name = {s.name: s for s in self.sites}
        if len(self.by_name) != len(self.sites):
            raise SiteError("model graph has two sites with one name")
        if "output" not in self.by_name:
            raise SiteError("model graph has no 'output' site")
        self.positional = positional
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.causal = causal  # heads read key/value positions up to their own query position only
        self._upstream: dict[tuple[str, str], tuple[Site, ...]] = {}

    @property
    def output(self) -> Site:
        return self.by_name["output"]

    def site(self, name: str, where: str = "") -> Site:
        if name in self.by_name:
            return self.by_name[name]
        prefix = f"{where}: " if where else ""
        raise SiteError(prefix + self._unknown(name))

    def _unknown(self, name: str) -> str:
        m = re.fullmatch(r"head\.(\d+)\.(\d+)", name)
        if m and self.n_heads:
            layer, head = int(m.group(1)), int(m.group(2))
            if layer >= self.n_layers:
                return (f"unknown site {name!r}: layer {layer} does not exist; the model has layers "
                        f"0..{self.n_layers - 1}.")
            return f"unknown site {name!r}: head index {head} is out of range; layer {layer} has heads 0..{self.n_heads - 1}."
        m = re.fullmatch(r"mlp\.(\d+)", name)
        if m and self.n_layers:
            if not any(s.kind == MLP for s in self.sites):
                return f"unknown site {name!r}: this model is attention-only and has no MLP sites."
            return f"unknown site {name!r}: the model has MLPs mlp.0..mlp.{self.n_layers - 1}."
        return (f"unknown site {name!r}.{did_you_mean(name, self.by_name)} "
                f"List the model's sites with scrub.list_sites(model) or `scrub sites MODEL`.")

    def upstream(self, site: Site, port: str) -> tuple[Site, ...]:
        """The sites `site` reads through `port`."""
        key = (site.name, port)
        if key not in self._upstream:
            if port == "mask":
                ups = tuple(s for s in self.sites if s.name == "pad_mask")
            else:
                ups = tuple(s for s in self.sites if s.additive and s.stage < site.stage)
            self._upstream[key] = ups
        return self._upstream[key]

    def read_point(self, site: Site) -> Site:
        """The site that names the residual stream `site` reads: every reader of one stage reads the
        same sum, so all heads of a layer share one name (and one tensor) for it."""
        for s in self.sites:
            if s.stage == site.stage and s.ports:
                return s
        return site

    def can_reach(self, lower: Site, upper: Site) -> bool:
        """True when some chain of edges leads from `lower` into `upper`."""
        if lower.additive:
            return lower.stage < upper.stage and bool(upper.ports)
        # a non-additive input (the padding mask) is read by heads, so it reaches a head or any site above one
        return upper.kind == HEAD or any(s.kind == HEAD and s.stage < upper.stage for s in self.sites)

    def table(self) -> str:
        """A readable listing of every site, for users writing hypotheses."""
        rows = [("site", "kind", "reads through", "notes")]
        for s in self.sites:
            rows.append((s.name, s.kind, ", ".join(s.ports) or "-", s.description))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def __repr__(self) -> str:
        return f"ModelGraph({len(self.sites)} sites: {', '.join(s.name for s in self.sites[:6])}, ...)"


def transformer_graph(n_layers: int, n_heads: int, has_mlp: bool, pad_mask: bool, causal: bool) -> ModelGraph:
    """Sites of a residual transformer: embeddings, heads, MLPs, output."""
    head_ports = ("q", "k", "v", "mask") if pad_mask else ("q", "k", "v")
    sites = [Site("embed", INPUT, 0, description="token embedding"),
             Site("pos_embed", INPUT, 0, description="positional embedding")]
    if pad_mask:
        sites.append(Site("pad_mask", INPUT, 0, additive=False, description="which keys are padding (read by heads)"))
    for layer in range(n_layers):
        for h in range(n_heads):
            sites.append(Site(f"head.{layer}.{h}", HEAD, 2 * layer + 1, head_ports, layer, h,
                              description="z @ W_O of this head"))
        if has_mlp:
            sites.append(Site(f"mlp.{layer}", MLP, 2 * layer + 2, ("in",), layer))
    sites.append(Site("output", OUTPUT, 2 * n_layers + 1, ("in",), description="logits"))
    return ModelGraph(sites, positional=True, n_layers=n_layers, n_heads=n_heads, causal=causal)
