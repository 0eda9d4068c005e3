"""Rendering of a report: one jinja2 template per report (`weekly.html`, `incident.html`) that
extends a layout: `document.html` for the mail body and the console's view (a full page with
its style sheet), `pdf.html` for the PDF (the same content, which fpdf2's HTML renderer turns
into pages), plus a short plain-text part for the mail.

fpdf2 is pure Python and needs no browser. The PDF embeds a Unicode TrueType font when the
system has one (DejaVu Sans: Latin, Greek, Cyrillic, Hebrew, Arabic...; `VIGIL_PDF_FONT_DIR`
names another directory with the same file names), so client names, rule titles and analysts'
notes keep their letters; a character the font lacks (e.g. CJK in DejaVu) is spelled in ASCII
or `?`. Without such a font, fpdf2's built-in Helvetica covers Latin-1 only, and the rest is
spelled the same way. The HTML always keeps every character.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
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


FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/share/fonts/TTF"))
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf",
              "BI": "DejaVuSans-BoldOblique.ttf"}


@functools.cache
def unicode_font() -> tuple[dict[str, Path], frozenset[int]] | None:
    """The Unicode font's files by style and the code points it draws, or None when the
    system has none (looked up once per process)."""
    configured = os.environ.get("VIGIL_PDF_FONT_DIR")
    for directory in (Path(configured),) if configured else FONT_DIRS:
        files = {style: directory / name for style, name in FONT_FILES.items()}
        if all(path.is_file() for path in files.values()):
            from fontTools.ttLib import TTFont  # fpdf2's own dependency

            with TTFont(files[""], lazy=True) as font:
                drawn = frozenset(font.getBestCmap())
            return files, drawn
    return None


def spelled(text: str, drawn: Callable[[int], bool]) -> str:
    """`text` with every character the font cannot draw spelled in ASCII (typographic signs,
    accents dropped) or `?`."""
    out = []
    for char in text:
        if drawn(ord(char)):
            out.append(char)
            continue
        spelling = _SPELLED.get(char)
        if spelling is None:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if drawn(ord(c)))
            spelling = base or "?"
        out.append(spelling)
    return "".join(out)


def latin1(text: str) -> str:
    """`text` in the PDF's built-in font (Latin-1)."""
    return spelled(text, lambda code: code < 256)


def render_pdf(report: dict[str, Any]) -> bytes:
    """The report as a PDF document (A4)."""
    pdf = FPDF(format="A4")
    font = unicode_font()
    if font is None:
        family, fit = "helvetica", latin1
    else:
        files, drawn = font
        family = "vigil-sans"
        for style, path in files.items():
            pdf.add_font(family, style, str(path))

        def fit(text: str) -> str:  # ASCII (the markup, line breaks) always passes
            return spelled(text, lambda code: code < 128 or code in drawn)
    pdf.set_title(fit(title(report)))
    pdf.set_author("Vigil")
    pdf.set_creator("Vigil")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font(family, size=9)
    pdf.write_html(fit(render_html(report, pdf=True)), font_family=family, tag_styles={
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
