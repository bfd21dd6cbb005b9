"""Capture-guidance and reconstruction report: ``report/index.html`` + ``report/report.json``."""

from vid2model.report.build import build_report

__all__ = ["build_report"]
