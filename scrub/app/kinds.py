"""Every registry a spec file names kinds from, in one list: `scrub kinds` prints it and
`scripts/kinds_doc.py` writes it into docs/spec-format.md, so neither lists kinds by hand."""

from __future__ import annotations


def registries() -> list:
    """(title, registry) for every sort of kind, in the order docs present them."""
    from hypotheses.features import FEATURES
    from hypotheses.rewrites import ESTIMATES
    from hypotheses.samplers import SAMPLERS
    from metrics.distances import DISTANCES
    from metrics.losses import LOSSES
    from metrics.protocol import METRICS
    from scrub.app.spec.sources import DATA_SOURCES, MODEL_SOURCES

    return [("samplers", SAMPLERS), ("features", FEATURES), ("estimates", ESTIMATES), ("losses", LOSSES),
            ("distances", DISTANCES),
            ("metrics", METRICS), ("model sources", MODEL_SOURCES), ("data sources", DATA_SOURCES)]


def describe(kind) -> str:
    """A kind's first line of documentation."""
    doc = getattr(kind, "doc", None) or getattr(kind, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def markdown() -> str:
    """The kinds as markdown tables, one per sort."""
    out = []
    for title, registry in registries():
        out.append(f"**{title}**\n\n| name | what |\n| --- | --- |")
        out += [f"| `{name}` | {describe(kind).replace('|', chr(92) + '|')} |" for name, kind in registry.items()]
        out.append("")
    return "\n".join(out)
