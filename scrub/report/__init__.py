"""Reporting: tables, files, W&B. Consumes plain result values; the engine never imports it."""

from scrub.report.html import render_compare_html, render_html, write_report
from scrub.report.record import evaluation_record, ranking_record
from scrub.report.table import format_table, markdown_table

__all__ = ["format_table", "markdown_table", "render_html", "render_compare_html", "write_report",
           "evaluation_record", "ranking_record"]
