"""Reporting: tables, files, W&B. Consumes plain result values; the engine never imports it."""

from scrub.report.table import format_table, markdown_table

__all__ = ["format_table", "markdown_table"]
