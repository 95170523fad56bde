"""Result records: one plain, JSON-ready dict per evaluated hypothesis.

The record is what the CLI writes (`result.json`), what the HTML report draws
and what W&B logging sends: one source for every consumer. Its schema is
documented in docs/results-json.md (schema id "scrub.result/1"); ranked
comparisons use "scrub.compare/1".
"""

from __future__ import annotations

import datetime as _dt
import math
from importlib import metadata
from typing import Any, Optional

import torch

SCHEMA = "scrub.result/1"
COMPARE_SCHEMA = "scrub.compare/1"


def _num(x: Any) -> Optional[float]:
    """JSON has no NaN or infinity: those become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def estimate_dict(est) -> dict:
    return {"value": _num(est.value), "low": _num(est.low), "high": _num(est.high),
            "seed_low": _num(est.seed_low), "seed_high": _num(est.seed_high), "level": est.level}


def graph_dict(hypothesis) -> dict:
    """The interpretation graph as data: nodes in depth-first order with parent links."""
    nodes = []
    for name, info in hypothesis.infos().items():
        n = info.node
        nodes.append({"name": name, "parent": info.parent, "depth": info.depth,
                      "paths": [str(p) for p in info.paths], "sampler": str(n.sampler),
                      "other_inputs": None if n.is_leaf else str(n.other_inputs), "policy": info.policy,
                      "leaf": n.is_leaf})
    return {"name": hypothesis.name, "policy": hypothesis.policy, "nodes": nodes}


def versions() -> dict:
    out = {"torch": torch.__version__}
    for pkg in ("scrub", "transformer-lens"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _per_datum(t) -> list:
    """Seed-averaged per-datum values, rounded to keep files small."""
    return [round(float(v), 6) for v in t.float().mean(0).tolist()]


def evaluation_record(ev, verdict, rule, *, cancel=None, spec: Optional[dict] = None,
                      spec_file: Optional[str] = None, spec_sha256: Optional[str] = None, model: Optional[dict] = None,
                      data: Optional[dict] = None, seconds: Optional[float] = None) -> dict:
    """The record of one Evaluation (metrics.Evaluation) judged by `rule` into `verdict`."""
    summary = {name: estimate_dict(est) for name, est in ev.estimates().items()}
    distance = verdict.distance
    return {
        "schema": SCHEMA,
        "name": ev.name,
        "spec_file": spec_file,
        "spec_sha256": spec_sha256,
        "spec": spec,
        "model": model or {},
        "data": {**(data or {}), "n_reference": int(ev.scrub_loss.shape[1])},
        "loss": ev.loss_name,
        "seeds": list(ev.seeds),
        "summary": summary,
        "random_distances": {k: _num(v.mean()) for k, v in ev.random_comparisons.items()},
        "verdict": {"status": verdict.status, "text": str(verdict), "reasons": list(verdict.reasons),
                    "flags": list(verdict.flags), "distance": rule.distance_for(ev), "cancels": verdict.cancels,
                    "rule": {"min_loss_recovered": rule.min_loss_recovered,
                             "max_distance_fraction": rule.max_distance_fraction, "min_gap": rule.min_gap,
                             "independent_margin": rule.independent_margin, "description": rule.describe()}},
        "independent_check": independent_dict(ev, verdict, rule),
        "per_datum": {"scrub_loss": _per_datum(ev.scrub_loss), "model_loss": _per_datum(ev.model_loss),
                      "random_loss": _per_datum(ev.random_loss),
                      "distances": {k: _per_datum(v) for k, v in ev.comparisons.items()}},
        "warnings": list(getattr(ev, "warnings", ())),
        "hypothesis_graph": graph_dict(ev.hypothesis),
        "cancel": None if cancel is None else cancel_dict(cancel),
        "timing": {"seconds": _num(seconds), "finished": _dt.datetime.now(_dt.timezone.utc).isoformat()},
        "versions": versions(),
        "distance_checked": None if distance is None else estimate_dict(distance),
    }


def independent_dict(ev, verdict, rule) -> Optional[dict]:
    """The independent-draw check (metrics/independent.py): None when it was not computed."""
    ind = getattr(ev, "independent", None)
    if ind is None or verdict.independent is None:
        return None
    return {"distance": rule.distance_for(ev), "value": estimate_dict(verdict.independent),
            "excess": estimate_dict(verdict.independent_excess), "margin": rule.independent_margin,
            "edges": ind.edges, "draws": ind.draws, "flagged": verdict.cancels}


def cancel_dict(report) -> dict:
    s, c = report.settings, report.cost
    return {
        "hypothesis": report.hypothesis.name,
        "distance": report.distance,
        "random_distance": _num(report.random_distance),
        "seeds": list(report.seeds),
        "joint": estimate_dict(report.joint),
        "tested_pairs": report.tested_pairs,
        "settings": {"min_effect": s.min_effect, "max_joint": s.max_joint, "max_size": s.max_size,
                     "max_components": s.max_components, "max_candidates": s.max_candidates,
                     "description": s.describe()},
        "search": {"components": c.components, "large": c.large, "searched": c.searched,
                   "candidates": c.candidates, "measured_sets": c.measured_sets,
                   "effect_variants": c.effect_variants, "verify_variants": c.verify_variants,
                   "variants": c.variants, "seconds": _num(c.seconds)},
        "components": [{"component": str(x.component), "node": x.component.node,
                        "scrubbed_alone": estimate_dict(x.scrubbed_alone),
                        "restored_alone": None if x.restored_alone is None else estimate_dict(x.restored_alone)}
                       for x in report.components],
        "sets": [{"components": [str(m) for m in cs.components], "effects": [estimate_dict(e) for e in cs.effects],
                  "joint": estimate_dict(cs.joint), "ratio": estimate_dict(cs.ratio),
                  "cancelled": estimate_dict(cs.cancelled)} for cs in report.sets],
        "pairs": [{"a": str(p.a), "b": str(p.b), "effect_a": estimate_dict(p.effect_a),
                   "effect_b": estimate_dict(p.effect_b), "joint": estimate_dict(p.joint),
                   "cancelled": estimate_dict(p.cancelled)} for p in report.pairs],
    }


def ranking_record(ranking, spec_files: Optional[list] = None) -> dict:
    return {
        "schema": COMPARE_SCHEMA,
        "alpha": ranking.alpha,
        "distance": ranking.distance,
        "rule": ranking.rule.describe(),
        "spec_files": spec_files,
        "rows": [{"rank": r.rank, "name": r.evaluation.name, "survives": r.survives,
                  "p_value": _num(r.p_value), "p_holm": _num(r.p_holm),
                  "loss_recovered": estimate_dict(r.verdict.loss_recovered),
                  "distance": None if r.verdict.distance is None else estimate_dict(r.verdict.distance),
                  "verdict": str(r.verdict), "flags": list(r.verdict.flags), "cancels": r.verdict.cancels}
                 for r in ranking.rows],
    }
