"""Compile a hypothesis against a model graph into a Plan.

The descent walks the treeified model from the output down, but only where
the hypothesis claims something: a copy of a site whose subtree holds no claim
is a plain value on one datum. At each copy it tracks which node patterns have
matched the path so far (an automaton over the hops, so `*` and `...` cost no
enumeration of paths) and applies the semantics:

- a copy claimed by a leaf node is the plain value on that node's datum x_n;
- a copy claimed by a node with children is evaluated: the inputs its
  children claim are computed as they say, every other input on r_n (or, under
  the independent policy, on a fresh draw per input edge);
- a copy on the way to a deeper claim (claimed by nobody) is evaluated the
  same way with the datum inherited from above;
- a copy claimed by a node with a rewrite is the node's estimate on x_n plus
  the residual (site - estimate) on the datum the rewrite names.

A child's matches start where its parent's match takes its last step, on
the same edge (so a child may claim the parent's own end copies more narrowly,
or paths through them); a match dies on reaching a site its path excludes.

Everything a user can get wrong is checked here, before any forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scrub.errors import HypothesisError, ScrubError, SiteError
from scrub.graph import INPUT, ModelGraph, Site

from hypotheses.nodes import Hypothesis, NodeInfo
from hypotheses.paths import ANY_CHAIN, ANY_ONE, SITE, Hop, Path

from scrub.compiler.plan import (DRAW, REFERENCE, Eval, Evaluated, InputExpr, NodeRoles, Plain, Plan, RoleSpec,
                                Term, Value, edge_key)
from scrub.compiler.rewrites import Rewritten, RewriteRoles, rewrite_terms


@dataclass(frozen=True)
class Match:
    node: str
    pattern: int  # index into the compiler's pattern table
    state: int  # index of the hop matched by the current copy
    seen: frozenset = frozenset()  # sites some path of the hypothesis excludes, visited so far on this path


@dataclass(frozen=True)
class Ctx:
    """Whose other-inputs datum feeds unclaimed inputs below the current copy."""

    node: str
    policy: str
    base_role: int


def compile_hypothesis(hypothesis: Hypothesis, graph: ModelGraph, n_positions: int) -> Plan:
    return _Compiler(hypothesis, graph, n_positions).run()


class _Compiler:
    def __init__(self, h: Hypothesis, graph: ModelGraph, n_positions: int):
        self.h, self.graph, self.n_pos = h, graph, n_positions
        self.infos: dict[str, NodeInfo] = h.infos()
        self.canon = {n: " | ".join(sorted(str(p) for p in i.paths)) for n, i in self.infos.items()}
        self.patterns: list[tuple[Hop, ...]] = []
        self.pattern_of: dict[tuple[str, Path], int] = {}
        self.excluded: list[frozenset] = []  # per pattern: sites its paths must not visit
        self.watch: frozenset = frozenset()  # every excluded site (matches remember visiting them)
        self.inside: dict[int, list[tuple[str, int]]] = {}  # pattern -> (child, child pattern) lying inside it
        self.depth = {n: i.depth for n, i in self.infos.items()}
        self.parent = {n: i.parent for n, i in self.infos.items()}
        self.rewrites = RewriteRoles(self)
        self.roles: list[RoleSpec] = []
        self.role_by_key: dict[str, int] = {}
        self.evals: list[Eval] = []
        self.eval_by_content: dict = {}
        self.memo: dict = {}
        self.complete_cache: dict = {}
        self.claimed: set[str] = set()
        self.x_roles: dict[str, int] = {}
        self.other_roles: dict[str, int] = {}
        self.edge_roles: dict[str, list[tuple[str, int]]] = {}

    # --- validation of paths against the graph --------------------------------
    def _resolve_hop(self, hop: Hop, where: str) -> Hop:
        if hop.kind == SITE and hop.port and f"{hop.site}.{hop.port}" in self.graph.by_name:
            hop = Hop(SITE, f"{hop.site}.{hop.port}", None, hop.positions)  # a site whose name ends in a word
        if hop.kind == SITE:
            site = self.graph.site(hop.site, where)
            if hop.port is not None and hop.port not in site.ports and not (hop.port == "in" and site.ports):
                if not site.ports:
                    raise SiteError(f"{where}: {site.name} reads no inputs, so it has no port {hop.port!r}.")
                raise SiteError(f"{where}: {site.name} has no input port {hop.port!r}; it reads through "
                                f"{', '.join(site.ports)}.")
            if hop.port == "in":
                hop = Hop(SITE, hop.site, None, hop.positions)
        if hop.positions is not None:
            if not self.graph.positional:
                raise SiteError(f"{where}: this model has no sequence positions; drop '@{hop.positions}'.")
            resolved = []
            for p in hop.positions:
                q = p + self.n_pos if p < 0 else p
                if not 0 <= q < self.n_pos:
                    raise SiteError(f"{where}: position {p} is out of range for sequences of length {self.n_pos} "
                                    f"(valid: 0..{self.n_pos - 1} or -{self.n_pos}..-1).")
                resolved.append(q)
            if hop.kind == SITE and not self.graph.site(hop.site).positional:
                raise SiteError(f"{where}: {hop.site} is claimed as a whole; drop the '@' positions.")
            hop = Hop(hop.kind, hop.site, hop.port, tuple(sorted(set(resolved))))
        return hop

    def _register(self, name: str, info: NodeInfo) -> None:
        try:
            self._register_paths(name, info)
        except ScrubError as exc:  # say which node, so the spec layer can point at its paths
            exc.node, exc.field = exc.node or name, exc.field or "paths"
            raise

    def _register_paths(self, name: str, info: NodeInfo) -> None:
        for path in info.paths:
            where = f"node {name!r}, path {str(path)!r}"
            hops = tuple(self._resolve_hop(h, where) for h in path.hops)
            for a, b in zip(hops, hops[1:]):
                if a.kind == SITE and b.kind == SITE:
                    reader, up = self.graph.site(a.site), self.graph.site(b.site)
                    ports = [a.port] if a.port else list(reader.ports)
                    if not any(up in self.graph.upstream(reader, p) for p in ports):
                        raise SiteError(f"{where}: {self.graph.not_an_input(reader, up, a.port)}.")
            last = hops[-1]
            if last.kind == SITE and self.graph.site(last.site).kind == INPUT and info.node.children:
                raise HypothesisError(f"{where}: node {name!r} has children but this path ends at the input site "
                                      f"{last.site!r}, which has no inputs for children to claim. Claim it from a "
                                      "leaf node.")
            if info.node.rewrite is not None and last.kind == SITE and not self.graph.site(last.site).additive:
                raise HypothesisError(f"{where}: {last.site} is not an additive site (it is read whole, not summed), "
                                      "so it cannot be rewritten as an estimate plus a residual.", field="rewrite")
            for site in path.excluding:
                self.graph.site(site, f"{where}, excluded site")
            idx = len(self.patterns)
            self.patterns.append(hops)
            self.excluded.append(frozenset(path.excluding))
            self.watch |= frozenset(path.excluding)
            self.pattern_of[(name, path)] = idx
            if not self._can_complete(idx, 0, self.graph.output):
                raise SiteError(f"{where}: matches no path of this model (no chain of sites has this shape).")

    # --- the match automaton ----------------------------------------------------
    def _match_at(self, pat: int, j: int, up: Site) -> list[tuple[int, Optional[tuple[int, ...]]]]:
        hops = self.patterns[pat]
        if j >= len(hops):
            return []
        hop = hops[j]
        if hop.kind == ANY_CHAIN:  # `...` consumes this copy, or matches nothing and the next hop must match
            return [(j, None)] + self._match_at(pat, j + 1, up)
        if hop.kind == ANY_ONE or hop.site == up.name:
            if hop.positions is not None and not up.positional:
                return []  # `*@p` names positions; a site read whole (a padding mask) has none
            return [(j, hop.positions)]
        return []

    def _step(self, pat: int, state: int, port: str, up: Site) -> list[tuple[int, Optional[tuple[int, ...]]]]:
        """Next states when the copy at `state` reads `up` through `port` (unfiltered)."""
        hops = self.patterns[pat]
        hop = hops[state]
        if hop.kind == SITE and hop.port is not None and hop.port != port:
            return []
        if hop.kind == ANY_CHAIN:
            return [(state, None)] + self._match_at(pat, state + 1, up)
        return self._match_at(pat, state + 1, up)

    def _can_complete(self, pat: int, state: int, site: Site) -> bool:
        """Can the rest of pattern `pat`, at `state` on a copy of `site`, still be matched below?"""
        key = (pat, state, site.name)
        if key not in self.complete_cache:
            hops = self.patterns[pat]
            if state == len(hops) - 1 and hops[state].kind != ANY_CHAIN:
                result = True
            else:
                result = any(self._can_complete(pat, s, up)
                             for port in site.ports for up in self.graph.upstream(site, port)
                             for s, _ in self._step(pat, state, port, up))
            self.complete_cache[key] = result
        return self.complete_cache[key]

    def _advance(self, m: Match, reader: Site, port: str, up: Site) -> list[tuple[Match, Optional[tuple]]]:
        """Where `m` goes when its copy reads `up` through `port`; a step that completes a pattern also
        starts the matches of the children lying inside it, on this same edge."""
        if up.name in self.excluded[m.pattern]:
            return []
        seen = m.seen | (self.watch & {up.name})
        out = []
        for state, positions in self._step(m.pattern, m.state, port, up):
            if self._can_complete(m.pattern, state, up):
                out.append((Match(m.node, m.pattern, state, seen), positions))
                if state == len(self.patterns[m.pattern]) - 1:
                    out += self._start_children(m.pattern, m.state, port, up, positions, seen)
        return out

    def _start_children(self, pat: int, before: int, port: str, up: Site, positions: Optional[tuple],
                        seen: frozenset) -> list[tuple[Match, Optional[tuple]]]:
        """Matches of the children inside pattern `pat`, which just completed on the edge `port <- up` from
        state `before`: each child takes the same step from the same state (its hops up to there are the
        parent's), held to the positions where the parent completed."""
        out = []
        for child, cpat in self.inside.get(pat, ()):
            if self.excluded[cpat] & seen or up.name in self.excluded[cpat]:
                continue
            for state, cpos in self._step(cpat, before, port, up):
                both = _intersect(positions, cpos)
                if both == () or not self._can_complete(cpat, state, up):
                    continue
                out.append((Match(child, cpat, state, seen), both))
                if state == len(self.patterns[cpat]) - 1:
                    out += self._start_children(cpat, before, port, up, both, seen)
        return out

    def _complete(self, m: Match) -> bool:
        return m.state == len(self.patterns[m.pattern]) - 1 and self.patterns[m.pattern][-1].kind != ANY_CHAIN

    # --- roles ----------------------------------------------------------------------
    def _role(self, key: str, parent: Optional[int], sampler, label: str, node: Optional[str]) -> int:
        if key not in self.role_by_key:
            rid = len(self.roles)
            self.roles.append(RoleSpec(rid, DRAW, parent, sampler, key, label, node))
            self.role_by_key[key] = rid
        return self.role_by_key[key]

    def _x_role(self, name: str) -> int:
        if name in self.x_roles:
            return self.x_roles[name]
        info = self.infos[name]
        parent = self._x_role(info.parent) if info.parent else 0
        s = info.node.sampler
        if s.exact:
            rid = parent
        else:
            cond = parent if s.conditions_on_parent else None  # the datum the draw conditions on
            if s.shared_group is not None:
                key = f"group:{s.shared_group}"
                if key in self.role_by_key and self.roles[self.role_by_key[key]].parent != cond:
                    first = self.roles[self.role_by_key[key]].node
                    raise HypothesisError(f"shared group {s.shared_group!r}: nodes {first!r} and {name!r} have parents that "
                                          "receive different data, so one common draw relative to the parent is "
                                          "undefined. Share only nodes whose parents get the same datum.",
                                          node=name, field="sampler")
                rid = self._role(key, cond, s.base, f"shared[{s.shared_group}]", name)
            else:
                rid = self._role(f"x:{self.canon[name]}", cond, s, f"x[{name}]", name)
        self.x_roles[name] = rid
        return rid

    def _other_role(self, name: str) -> int:
        if name not in self.other_roles:
            s = self.infos[name].node.other_inputs
            x = self._x_role(name)
            self.other_roles[name] = x if s.exact else self._role(
                f"r:{self.canon[name]}", x if s.conditions_on_parent else None, s, f"r[{name}]", name)
        return self.other_roles[name]

    def ctx_of(self, name: str) -> Ctx:
        """The context of the copies inside node `name`'s claims: its other-inputs datum."""
        return Ctx(name, self.infos[name].policy, self._other_role(name))

    def _edge_datum(self, ctx: Ctx, key: str) -> int:
        if ctx.policy == "shared":
            return ctx.base_role
        s = self.infos[ctx.node].node.other_inputs
        x = self._x_role(ctx.node)
        if s.exact:
            return x
        rid = self._role(f"r:{self.canon[ctx.node]}:{key}", x if s.conditions_on_parent else None, s,
                         f"r[{ctx.node}: {key}]", ctx.node)
        self.edge_roles.setdefault(ctx.node, [])
        if (key, rid) not in self.edge_roles[ctx.node]:
            self.edge_roles[ctx.node].append((key, rid))
        return rid

    # --- the descent ------------------------------------------------------------------
    def _pattern_str(self, m: Match) -> str:
        return " <- ".join(str(h) for h in self.patterns[m.pattern])

    def visit(self, site: Site, ctx: Optional[Ctx], matches: frozenset, path_key: str,
              positions: Optional[tuple]) -> Value:
        """The value of a copy of `site`; only `positions` of it are read (None: all)."""
        complete = [m for m in matches if self._complete(m)]
        if not complete:
            return self.eval_site(site, ctx, matches, path_key, positions)
        chain = self._owner_chain(complete, path_key)  # a node and the descendants claiming inside it, here
        owner = chain[-1]
        # allowed here: the chain's own ends, and deeper claims of the owner or of nodes inside it
        intruders = [m for m in matches if not (m.node in chain if self._complete(m) else self._descends(m.node, owner))]
        if intruders:
            m = intruders[0]
            raise HypothesisError(f"node {m.node!r} claims {self._pattern_str(m)!r}, which passes through "
                                  f"{path_key!r}, claimed by node {owner!r}. Make {m.node!r} a descendant of "
                                  f"{owner!r}, or narrow one of the two paths.", node=m.node, field="paths")
        self.claimed.update(chain)
        info = self.infos[owner]
        if info.node.is_leaf:
            if info.node.rewrite is not None:
                return self.rewrites.value(site, owner, path_key)
            return Plain("out", site.name, self._x_role(owner))
        new_ctx = self.ctx_of(owner)
        if site.kind == INPUT:  # a claimed input with nothing below it: an unclaimed input of the owner
            return Plain("out", site.name, self._edge_datum(new_ctx, path_key))
        inner = frozenset(m for m in matches if not self._complete(m))  # the claims inside the owner's
        return self.eval_site(site, new_ctx, inner, path_key, positions)

    def _owner_chain(self, complete: list, path_key: str) -> list[str]:
        """The nodes whose patterns end at this copy, outermost first; each must lie inside the one before."""
        chain = sorted({m.node for m in complete}, key=lambda n: self.depth[n])
        for outer, inner in zip(chain, chain[1:]):
            if self.parent[inner] != outer:
                raise HypothesisError(f"the path {path_key!r} is claimed by two nodes, {outer!r} and {inner!r} "
                                      "(through their paths " + " and ".join(
                                          repr(self._pattern_str(m)) for m in complete if m.node in (outer, inner))
                                      + "); each path may be claimed by one node only.", node=inner, field="paths")
        return chain

    def _descends(self, node: str, ancestor: str) -> bool:
        while node is not None:
            if node == ancestor:
                return True
            node = self.parent[node]
        return False

    def _classes(self, matches: frozenset, reader: Site, port: str, up: Site, positions: Optional[tuple]):
        """Partition `up`'s read positions by which advanced matches hold there.
        Returns (positions or None for all, matches) pairs; unread positions get no matches."""
        advanced = [a for m in matches for a in self._advance(m, reader, port, up)]
        read = self.graph.read_positions(port, positions)
        if not advanced:
            return [(None, frozenset())]
        if read is None and all(pos is None for _, pos in advanced):
            return [(None, frozenset(m for m, _ in advanced))]
        groups: dict[frozenset, list[int]] = {}
        for j in range(self.n_pos):
            here = frozenset(m for m, pos in advanced if (pos is None or j in pos) and (read is None or j in read))
            groups.setdefault(here, []).append(j)
        return [(tuple(js), ms) for ms, js in groups.items()]

    def eval_site(self, site: Site, ctx: Ctx, matches: frozenset, path_key: str, positions: Optional[tuple]) -> Value:
        memo_key = (site.name, ctx, matches, path_key if ctx.policy == "independent" else None, positions)
        if memo_key in self.memo:
            return self.memo[memo_key]
        inputs = []
        direct = []
        for port in site.ports:
            if not self.graph.port(port).additive:
                direct.append((port, self._direct_role(site, port, ctx, matches, path_key, positions)))
                continue
            parts = []  # (upstream site, positions, value)
            for up in self.graph.upstream(site, port):
                for up_positions, ms in self._classes(matches, site, port, up, positions):
                    key = edge_key(path_key, port, up.name)
                    if ms:
                        value = self.visit(up, ctx, ms, key, up_positions)
                    else:
                        value = Plain("out", up.name, self._edge_datum(ctx, key))
                    parts.append((up, up_positions, value))
            inputs.append((port, self._input_expr(site, parts, ctx.base_role)))
        content = (site.name, tuple(inputs), tuple(direct))
        if content not in self.eval_by_content:
            eid = len(self.evals)
            label = f"{site.name} at {path_key!r} (other inputs: {ctx.node})"
            self.evals.append(Eval(eid, site.name, site.stage, tuple(inputs), tuple(direct), label))
            self.eval_by_content[content] = Evaluated(eid)
        self.memo[memo_key] = self.eval_by_content[content]
        return self.memo[memo_key]

    def _input_expr(self, site: Site, parts, default_role: int) -> InputExpr:
        """resid(site, base) + sum of (value - plain(u, base)) holds for any base datum: pick the base
        that most upstream values are plain on, so inputs that are mostly one datum cost few terms."""
        votes: dict[int, int] = {}
        for _, positions, value in parts:
            if isinstance(value, Plain) and positions is None:
                votes[value.role] = votes.get(value.role, 0) + 1
        base = max(votes, key=lambda r: (votes[r], r == default_role)) if votes else default_role
        parts, terms = self._whole_inputs(site, parts, base)
        for up, positions, value in parts:
            if isinstance(value, Rewritten):
                terms += rewrite_terms(value, Plain("out", up.name, base), positions)
            elif value != Plain("out", up.name, base):
                terms.append(Term(value, Plain("out", up.name, base), positions))
        return InputExpr(Plain("resid", self.graph.read_point(site).name, base), tuple(terms))

    def _whole_inputs(self, site: Site, parts, base: int) -> tuple[list, list[Term]]:
        """Where every upstream site is plain on one role at the same positions (a claim of the whole input at
        some positions, e.g. one node per position), one residual term replaces a term per upstream site: the
        residual is the sum of the upstream outputs plus constants, which cancel in the difference."""
        by_class: dict = {}
        for up, positions, value in parts:
            if isinstance(value, Plain) and value.role != base:
                by_class.setdefault((value.role, positions), set()).add(up.name)
        n_up = len({up.name for up, _, _ in parts})
        whole = {k for k, ups in by_class.items() if len(ups) == n_up}
        if not whole:
            return parts, []
        resid = self.graph.read_point(site).name
        terms = [Term(Plain("resid", resid, role), Plain("resid", resid, base), positions)
                 for role, positions in sorted(whole, key=repr)]
        rest = [(up, positions, value) for up, positions, value in parts
                if not (isinstance(value, Plain) and (value.role, positions) in whole)]
        return rest, terms

    def _direct_role(self, site: Site, port: str, ctx: Ctx, matches: frozenset, path_key: str, positions) -> int:
        """The datum whose model inputs a direct (non-additive) port reads, e.g. the tokens a padding mask
        is computed from."""
        source = self.graph.upstream(site, port)[0]
        key = edge_key(path_key, port, source.name)
        _, ms = self._classes(matches, site, port, source, positions)[0]
        if not ms:
            return self._edge_datum(ctx, key)
        value = self.visit(source, ctx, ms, key, None)
        if isinstance(value, Rewritten):
            raise HypothesisError(f"{source.name} is read whole by {site.name}'s {port!r} input, not summed, so it "
                                  "cannot be rewritten as an estimate plus a residual.", field="rewrite")
        assert isinstance(value, Plain)  # an input site is claimed whole
        return value.role

    # --- driver -----------------------------------------------------------------------
    def run(self) -> Plan:
        self.roles.append(RoleSpec(0, REFERENCE, None, None, "reference", "x0"))
        for name, info in self.infos.items():
            self._register(name, info)
        for name, info in self.infos.items():
            if info.parent is None:
                continue
            for path in info.paths:
                for parent_path in self.infos[info.parent].paths:
                    if path.within(parent_path):
                        self.inside.setdefault(self.pattern_of[(info.parent, parent_path)], []).append(
                            (name, self.pattern_of[(name, path)]))
        root = self.h.root.name
        root_pat = self.pattern_of[(root, self.infos[root].paths[0])]
        start = {Match(root, root_pat, 0)}
        for child, cpat in self.inside.get(root_pat, ()):  # the root's children start at the output
            if self._can_complete(cpat, 0, self.graph.output):
                start.add(Match(child, cpat, 0))
        output = self.visit(self.graph.output, None, frozenset(start), "output", None)
        unreached = [n for n in self.infos if n not in self.claimed]
        if unreached:
            n = unreached[0]
            raise HypothesisError(f"node {n!r} claims {[str(p) for p in self.infos[n].paths]}, but none of these "
                                  "paths is reached from its parent's claims, so the node would silently do nothing. "
                                  "Check the ports and positions against the parent's paths.", node=n, field="paths")
        nodes = {n: NodeRoles(self._x_role(n), self.other_roles.get(n), tuple(self.edge_roles.get(n, ())),
                              self.rewrites.residual_roles.get(n)) for n in self.infos}
        return Plan((self.h.name,), tuple(self.roles), tuple(self.evals), (output,), (nodes,), self.n_pos,
                    self.rewrites.estimates())


def _intersect(a: Optional[tuple], b: Optional[tuple]) -> Optional[tuple]:
    """Positions in both (None: every position)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(p for p in a if p in b)
