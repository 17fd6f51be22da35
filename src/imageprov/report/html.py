"""The report as one static HTML page: counts, an inline SVG chart and the images.

The page loads nothing: styles are inline, the chart is SVG drawn here, there is
no script, and a Content-Security-Policy forbids every outside resource. Every
value from a record is escaped, since actors, reasons and names come from
whoever made the call.
"""

from __future__ import annotations

from html import escape

from imageprov.report import FLAGS, STATUSES, Report

COLOURS = {"flagged": "#c0392b", "unattributed": "#d4a017", "pending": "#2e86c1",
           "excepted": "#17a589", "approved": "#27ae60"}
CHART_WIDTH = 720
CHART_HEIGHT = 240
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.status-flagged{color:#c0392b;font-weight:bold}
.reason{max-width:40em}
"""


def _cell(value: object) -> str:
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _counts(report: Report) -> str:
    cells = "".join(
        f'<tr><th>{status}</th><td id="count-{status}" data-count="{report.status_counts[status]}">'
        f"{report.status_counts[status]}</td></tr>"
        for status in STATUSES)
    flags = "".join(
        f'<tr><th>{flag}</th><td id="flag-{flag}">{report.flag_counts[flag]}</td></tr>'
        for flag in FLAGS)
    total = sum(report.status_counts.values())
    return (f'<h2>Counts</h2><p>images <span id="count-total">{total}</span></p>'
            f'<table id="status-counts">{cells}</table>'
            f'<table id="flag-counts">{flags}</table>')


def _chart(report: Report) -> str:
    """Draw one stacked bar per day, statuses in report order from the bottom up."""
    days = report.timeline
    if not days:
        return ('<svg id="verdict-chart" xmlns="http://www.w3.org/2000/svg" width="'
                f'{CHART_WIDTH}" height="40"><text x="0" y="20">no verdict history'
                "</text></svg>")
    peak = max(sum(counts.values()) for _, counts in days) or 1
    plot = CHART_HEIGHT - 40
    width = CHART_WIDTH / len(days)
    bars: list[str] = []
    for index, (day, counts) in enumerate(days):
        x = index * width
        y = float(plot)
        for status in STATUSES:
            height = counts[status] / peak * plot
            if height <= 0:
                continue
            y -= height
            bars.append(
                f'<rect class="bar" data-day="{day}" data-status="{status}" '
                f'data-count="{counts[status]}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{max(width - 1, 1):.1f}" height="{height:.1f}" '
                f'fill="{COLOURS[status]}"><title>{day} {status} {counts[status]}'
                "</title></rect>")
    legend = "".join(
        f'<rect x="{i * 120}" y="{plot + 20}" width="10" height="10" '
        f'fill="{COLOURS[s]}"/><text x="{i * 120 + 14}" y="{plot + 30}">{s}</text>'
        for i, s in enumerate(STATUSES))
    axis = (f'<text x="0" y="{plot + 14}">{days[0][0]}</text>'
            f'<text x="{CHART_WIDTH}" y="{plot + 14}" text-anchor="end">{days[-1][0]}</text>'
            f'<text x="0" y="12">{peak} images</text>')
    return (f'<svg id="verdict-chart" xmlns="http://www.w3.org/2000/svg" '
            f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" '
            f'aria-label="verdicts per day">{"".join(bars)}{axis}{legend}</svg>')


def _rows(report: Report) -> str:
    header = "".join(f"<th>{name}</th>" for name in
                     ("image", "status", "flags", "actor", "address", "reason", "account",
                      "region", "decided"))
    lines = []
    for row in report.rows:
        lines.append(
            f'<tr class="image" data-status="{row["status"]}">{_cell(row["image"])}'
            f'<td class="status-{row["status"]}">{row["status"]}</td>'
            f'{_cell(" ".join(row["flags"]))}{_cell(row["actor"])}'
            f'{_cell(row["source_ip"])}<td class="reason">{escape(row["reason"])}</td>'
            f'{_cell(row["account"])}{_cell(row["region"])}{_cell(row["decided_at"])}</tr>')
    return (f'<h2>Images</h2><table id="images"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def to_html(report: Report) -> str:
    """Return the whole page."""
    filters = ", ".join(f"{name} {value}" for name, value in report.filters.as_dict().items()
                        if value is not None) or "none"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>imageprov report {escape(report.generated_at.isoformat())}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>imageprov baseline report</h1><p>generated "
        f"{escape(report.generated_at.isoformat())}; filters {escape(filters)}</p>"
        f"{_counts(report)}<h2>Verdicts over time</h2>{_chart(report)}{_rows(report)}"
        "</body></html>\n"
    )
