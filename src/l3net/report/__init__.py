"""``l3net report``: one self-contained HTML page for a run directory (:mod:`.render`), with the
training curves drawn from its log (:mod:`.curves`)."""

from __future__ import annotations

from .render import REPORT_FILE, ReportSummary, build_report, write_report

__all__ = ["REPORT_FILE", "ReportSummary", "build_report", "write_report"]
