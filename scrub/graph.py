"""Model graphs: a model seen as named sites and the edges between them.

A site's output adds into a *stream* that later sites read: the residual
stream, or (for models that normalise the attention output before adding it,
such as Gemma-2) the per-layer sum of the heads that a glue site `attn.L`
reads. A reader site reads through *ports*: an additive port (an attention
head's q, k or v; an MLP's, a glue site's or the output's `in`) reads the sum
of the outputs of every additive site of a lower stage writing into the
stream the reader reads; a direct port (a head's padding `mask`) reads named
non-additive input sites. Input sites (embeddings, or a toy model's
components) read the datum.

Everything architecture-specific that the compiler needs comes from here, as
the adapter built it: which ports a site has, which positions of an upstream
site a reader's positions depend on (`Port.positions`), whether attention is
causal, which sites are positional at all. The transformer graphs are built
in `scrub.adapters.transformer_graph`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Iterable, Optional

from scrub.errors import SiteError, did_you_mean

INPUT, HEAD, ATTN, MLP, OUTPUT = "input", "head", "attn", "mlp", "output"
RESIDUAL = "resid"  # the stream every site writes into and reads unless its graph says otherwise

# How a reader's positions map to the upstream positions it depends on:
OWN = "own"  # the reader's own positions (queries, MLP and output inputs)
KEYS = "keys"  # every position, or up to the last read query position when attention is causal
WHOLE = "whole"  # the whole input, positions do not apply (a padding mask)


@dataclass(frozen=True)
class Port:
    """One input of reader sites. `sources`: for a direct port, the input sites it reads (else additive)."""

    name: str
    positions: str = OWN
    sources: tuple[str, ...] = ()
    description: str = ""

    @property
    def additive(self) -> bool:
        return not self.sources


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
    positional: bool = True  # claims may name positions of it (False: claimed as a whole, e.g. a padding mask)
    reads: str = RESIDUAL  # the stream its additive ports read
    writes: str = RESIDUAL  # the stream its output adds into (a glue site's name for heads under a post-norm)


IN = Port("in", OWN, description="the residual stream at the reader's own positions")


class ModelGraph:
    """The sites of one model, with lookups that explain mistakes.

    ports: every port name a site may have (default: `in`); positional: the model
    has sequence positions; causal: heads read keys up to their query only;
    notes: facts about the model shown with its site list (e.g. shared key heads)."""

    def __init__(self, sites: Iterable[Site], positional: bool = True, n_layers: int = 0, n_heads: int = 0,
                 causal: bool = False, ports: Iterable[Port] = (IN,), notes: Iterable[str] = ()):
        self.sites: tuple[Site, ...] = tuple(sorted(sites, key=lambda s: s.stage))
        self.by_name = {s.name: s for s in self.sites}
        if len(self.by_name) != len(self.sites):
            raise SiteError("model graph has two sites with one name")
        if "output" not in self.by_name:
            raise SiteError("model graph has no 'output' site")
        self.ports = {p.name: p for p in ports}
        for s in self.sites:
            for p in s.ports:
                if p not in self.ports:
                    raise SiteError(f"site {s.name!r} reads through port {p!r}, which the graph does not define")
        self.positional = positional
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.causal = causal
        self.notes = tuple(notes)
        self._upstream: dict[tuple[str, str], tuple[Site, ...]] = {}
        self._reach: dict[tuple[str, str], bool] = {}

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
        if name == "pos_embed" and self.positional:
            return ("unknown site 'pos_embed': this model has no positional-embedding site (positions act inside "
                    "attention, e.g. rotary embeddings); claim heads' q and k inputs instead.")
        return (f"unknown site {name!r}.{did_you_mean(name, self.by_name)} "
                f"List the model's sites with scrub.list_sites(model) or `scrub sites MODEL`.")

    def port(self, name: str) -> Port:
        return self.ports[name]

    def upstream(self, site: Site, port: str) -> tuple[Site, ...]:
        """The sites `site` reads through `port`."""
        key = (site.name, port)
        if key not in self._upstream:
            p = self.ports[port]
            if p.sources:
                ups = tuple(self.by_name[n] for n in p.sources if n in self.by_name)
            else:
                ups = tuple(s for s in self.sites if s.additive and s.stage < site.stage and s.writes == site.reads)
            self._upstream[key] = ups
        return self._upstream[key]

    def read_positions(self, port: str, positions: Optional[tuple]) -> Optional[frozenset]:
        """Positions of an upstream site that a reader copy read at `positions` depends on (None: all)."""
        rule = self.ports[port].positions
        if positions is None or rule == WHOLE:
            return None
        if rule == KEYS:  # every position, or up to the last query under causal attention
            return frozenset(range(max(positions) + 1)) if self.causal else None
        return frozenset(positions)

    def read_point(self, site: Site) -> Site:
        """The site that names the residual stream `site` reads: every reader of one stage reads the
        same sum, so all heads of a layer share one name (and one tensor) for it."""
        for s in self.sites:
            if s.stage == site.stage and s.ports and s.reads == site.reads:
                return s
        return site

    def can_reach(self, lower: Site, upper: Site) -> bool:
        """True when some chain of edges leads from `lower` into `upper`."""
        key = (lower.name, upper.name)
        if key not in self._reach:
            self._reach[key] = self._can_reach(lower, upper)
        return self._reach[key]

    def _can_reach(self, lower: Site, upper: Site) -> bool:
        if lower.additive:
            readers = [s for s in self.sites if s.ports and s.reads == lower.writes and s.stage > lower.stage]
        else:  # a non-additive input (a padding mask) reaches the sites reading it directly
            readers = [s for s in self.sites if any(lower.name in self.ports[p].sources for p in s.ports)]
        return any(r.name == upper.name or (r.stage < upper.stage and self.can_reach(r, upper)) for r in readers)

    def not_an_input(self, reader: Site, up: Site, port: Optional[str]) -> str:
        """Why `up` is not read by `reader` (through `port`), for error messages."""
        if not reader.ports:
            return f"{reader.name} reads no inputs"
        through = f" through port {port!r}" if port else ""
        if up.additive and up.writes != reader.reads and up.stage < reader.stage:
            return (f"{up.name} is not an input of {reader.name}{through}: its output goes into {up.writes}, "
                    f"not into the stream {reader.name} reads, so paths from it pass through {up.writes} "
                    f"(e.g. '{reader.name} <- {up.writes} <- {up.name}', or '{reader.name} <- ... <- {up.name}')")
        return f"{up.name} is not an input of {reader.name}{through} (a site reads only sites of earlier layers)"

    def table(self) -> str:
        """A readable listing of every site, for users writing hypotheses."""
        rows = [("site", "kind", "reads through", "notes")]
        for s in self.sites:
            rows.append((s.name, s.kind, ", ".join(s.ports) or "-", s.description))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        return text + "".join("\n\n" + textwrap.fill(n, 100) for n in self.notes)

    def __repr__(self) -> str:
        return f"ModelGraph({len(self.sites)} sites: {', '.join(s.name for s in self.sites[:6])}, ...)"
