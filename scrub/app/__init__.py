"""The application: spec files, the command line, reports and W&B logging.

The top layer: it uses the language (`hypotheses`), the engine (`scrub`) and
`metrics`, and nothing of ours imports it (docs/architecture.md).
"""
