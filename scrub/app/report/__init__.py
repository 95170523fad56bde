"""Reporting: tables, files, W&B. Consumes plain result values; nothing below the application imports it.

`to_wandb` (in `wandb_log`, which imports wandb only when called) is the sink for
`metrics.evaluate(..., log_to=...)`.
"""

from metrics.table import format_table, markdown_table
from scrub.app.report.html import render_compare_html, render_html, write_report
from scrub.app.report.record import evaluation_record, ranking_record
from scrub.app.report.wandb_log import to_wandb

__all__ = ["format_table", "markdown_table", "render_html", "render_compare_html", "write_report",
           "evaluation_record", "ranking_record", "to_wandb"]
