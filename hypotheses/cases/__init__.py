"""Case studies: one folder each, holding the model (a trained checkpoint or a
builder), its data, Python hypotheses about it and their spec files.

Case studies are content, not language: they build models, so they sit above
the engine (see docs/architecture.md). `registry` names their models and data
for spec files and the command line.
"""
