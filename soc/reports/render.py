"""Rendering of a report: one jinja2 template per report (`weekly.html`, `incident.html`) that
extends a layout: `document.html` for the mail body and the console's view (a full page with
its style sheet), `pdf.html` for the PDF (the same content, which fpdf2's HTML renderer turns
into pages), plus a short plain-text part for the mail.

fpdf2 is pure Python and needs no system library or browser; its built-in fonts cover
Latin-1 only, so other characters are spelled in ASCII or replaced by `?` in the PDF (the
HTML keeps them).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

import jinja2
from fpdf import FPDF
from fpdf.fonts import FontFace

# What the HTML view may load: its own inline style sheet, nothing else (no script at all).
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
              "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
TEMPLATES = {"weekly": "weekly.html", "closed_incident": "incident.html"}
_SPELLED = {"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"',
            "\u201d": '"', "\u2026": "...", "\u2192": "->", "\u00a0": " ", "\u2264": "<=",
            "\u2265": ">=", "\u2022": "*"}

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("soc.reports", "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


_environment.filters.update(duration=_duration, when=_when, pct=_pct)


def render_html(report: dict[str, Any], *, pdf: bool = False) -> str:
    """The report as an HTML page (or, `pdf`, as the HTML the PDF is made from)."""
    template = _environment.get_template(TEMPLATES[report["kind"]])
    return template.render(r=report, layout="pdf.html" if pdf else "document.html")


def latin1(text: str) -> str:
    """`text` in the PDF's built-in font: typographic signs spelled in ASCII, accents kept
    where Latin-1 has them, anything else `?`."""
    out = []
    for char in text:
        if ord(char) < 256:
            out.append(char)
            continue
        spelled = _SPELLED.get(char)
        if spelled is None:
            base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode()
            spelled = base or "?"
        out.append(spelled)
    return "".join(out)


def render_pdf(report: dict[str, Any]) -> bytes:
    """The report as a PDF document (A4)."""
    pdf = FPDF(format="A4")
    pdf.set_title(latin1(title(report)))
    pdf.set_author("Vigil")
    pdf.set_creator("Vigil")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("helvetica", size=9)
    pdf.write_html(latin1(render_html(report, pdf=True)), tag_styles={
        "h1": FontFace(color="#1d2330", size_pt=17, emphasis="BOLD"),
        "h2": FontFace(color="#1d3a6e", size_pt=12, emphasis="BOLD")})
    return bytes(pdf.output())


def title(report: dict[str, Any]) -> str:
    if report["kind"] == "weekly":
        return f"Weekly security report {report['week_label']}: {report['tenant_name']}"
    return (f"Closed incident report: {report['rule']['name']} "
            f"({report['tenant_name']})")


def render_text(report: dict[str, Any]) -> str:
    """The mail's plain-text part: the headline figures (the details are in the PDF)."""
    lines = [title(report), ""]
    if report["kind"] == "weekly":
        total = report["alerts_total"]
        overall = report["sla_overall"] or {}
        lines += [f"Alerts this week: {total['total']} ({total['resolved']} resolved)",
                  f"MTTA: {_duration(overall.get('mtta_seconds'))}, "
                  f"MTTR: {_duration(overall.get('mttr_seconds'))}, "
                  f"within SLA: {_pct(overall.get('within_sla_pct'))}",
                  f"Questions to you: {len(report['client_requests'])}, "
                  f"incidents closed: {len(report['closed_incidents'])}"]
    else:
        alert = report["alert"]
        lines += [f"Alert {alert['id']} ({alert['severity']}), resolved "
                  f"{_when(alert['resolved_at'])} as true positive",
                  f"Reason: {report['resolution_reason'] or '-'}"]
    lines += ["", "The full report is attached as PDF; the console's Reports page has every "
              "report."]
    return "\n".join(lines) + "\n"


def file_name(report: dict[str, Any], extension: str) -> str:
    if report["kind"] == "weekly":
        return f"vigil-weekly-{report['tenant']}-{report['week']}.{extension}"
    return f"vigil-incident-{report['tenant']}-{report['alert']['id'][:8]}.{extension}"
