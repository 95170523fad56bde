"""Rewritten copies in the compiler: a node's estimate f on its datum, plus the residual site - f.

A copy claimed by a leaf with a rewrite has the value f(x_n) + (site(y) - f(y)),
with y given by the rewrite's residual (hypotheses.rewrites): the parent's
other-inputs datum for this copy ("resample"), a draw of the rewrite's own
sampler, or none ("drop"). Its reader's input then gets two difference terms
instead of one (`rewrite_terms`); "exact" is the site's own value on x_n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scrub.compiler.plan import Estimated, Plain, Term


@dataclass(frozen=True)
class Rewritten:
    """The value of a rewritten copy, while compiling (it never reaches the plan as one value)."""

    estimate: Estimated  # f(x_n)
    plain: Optional[Plain] = None  # site(y), when the residual is kept
    minus: Optional[Estimated] = None  # f(y)


def rewrite_terms(value: Rewritten, base: Plain, positions) -> list[Term]:
    """The reader-input terms of a rewritten upstream copy over `base` (its plain output on the base role)."""
    terms = [Term(value.estimate, base, positions)]
    if value.plain is not None:
        terms.append(Term(value.plain, value.minus, positions))
    return terms


def residual_key(path_key: str) -> str:
    """The name of a rewritten copy's residual draw under the independent policy (the judge builds it too)."""
    return f"{path_key} (residual)"


class RewriteRoles:
    """The estimates a plan evaluates and the residual roles of rewriting nodes, for one compilation."""

    def __init__(self, compiler):
        self.compiler = compiler
        self._ids: dict = {}
        self._order: list = []
        self.residual_roles: dict[str, int] = {}

    def estimates(self) -> tuple:
        return tuple(self._order)

    def _estimate(self, estimate) -> int:
        key = (estimate, estimate.fn)  # equal names never merge different code
        if key not in self._ids:
            self._ids[key] = len(self._order)
            self._order.append(estimate)
        return self._ids[key]

    def value(self, site, owner: str, path_key: str):
        c = self.compiler
        rewrite = c.infos[owner].node.rewrite
        x = c._x_role(owner)
        if rewrite.residual == "exact":
            return Plain("out", site.name, x)
        e = self._estimate(rewrite.estimate)
        if rewrite.residual == "drop":
            return Rewritten(Estimated(e, x))
        y = self._residual_role(owner, path_key)
        return Rewritten(Estimated(e, x), Plain("out", site.name, y), Estimated(e, y))

    def _residual_role(self, owner: str, path_key: str) -> int:
        c = self.compiler
        sampler = c.infos[owner].node.rewrite.residual_sampler
        if sampler is None:  # resampled like an unclaimed input of the parent
            return c._edge_datum(c.ctx_of(c.parent[owner]), residual_key(path_key))
        x = c._x_role(owner)
        if sampler.exact:
            return x
        rid = c._role(f"res:{c.canon[owner]}", x if sampler.conditions_on_parent else None, sampler,
                      f"residual[{owner}]", owner)
        self.residual_roles[owner] = rid
        return rid
