"""A static HTML access report for a regulator: counts, refusals, key events, a chart (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from html import escape

from audit.actions import CLIENT_EVENTS, KEY_EVENTS
from audit.entry import AuditEntry

__all__ = ["render_report"]
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #bbb;padding:.25rem .6rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:bold}
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>'
            if isinstance(cell, int)
            else f"<td>{escape(str(cell))}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=i) for i in range((until - since).days + 1)]


def _chart(entries: Sequence[AuditEntry], days: Sequence[date]) -> str:
    """A stacked bar chart: accesses per day, refused and failed ones on top in red."""
    ok = Counter(e.time.date() for e in entries if e.outcome == "ok")
    bad = Counter(e.time.date() for e in entries if e.outcome != "ok")
    peak = max([ok[d] + bad[d] for d in days] + [1])
    width, height, left, bottom = 760, 220, 40, 30
    bar = max((width - left) / max(len(days), 1), 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" '
        'role="img" aria-label="accesses per day">',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>',
        f'<text x="0" y="12" font-size="11">{peak}</text>',
        f'<text x="0" y="{height}" font-size="11">0</text>',
    ]
    for i, day in enumerate(days):
        x = left + i * bar
        h_ok = height * ok[day] / peak
        h_bad = height * bad[day] / peak
        parts.append(
            f'<rect x="{x:.1f}" y="{height - h_ok:.1f}" width="{max(bar - 1, 0.5):.1f}" '
            f'height="{h_ok:.1f}" fill="#3b82f6"><title>{day}: {ok[day]} ok</title></rect>'
        )
        if bad[day]:
            top = height - h_ok - h_bad
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{max(bar - 1, 0.5):.1f}" '
                f'height="{h_bad:.1f}" fill="#dc2626"><title>{day}: {bad[day]} refused or failed'
                "</title></rect>"
            )
    step = max(len(days) // 8, 1)
    for i in range(0, len(days), step):
        parts.append(
            f'<text x="{left + i * bar:.1f}" y="{height + 18}" font-size="10">{days[i]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _events(entries: Sequence[AuditEntry], actions: frozenset[str]) -> str:
    """A table of the entries of ``actions``, each with its detail and where it was done."""
    return _table(
        ["seq", "time", "actor", "where", "action", "domains", "detail", "outcome"],
        [
            (
                e.seq,
                e.time.isoformat(),
                e.actor,
                "host" if e.actor.startswith("operator:") else "API",
                e.action,
                " ".join(e.domains),
                " ".join(f"{k}={v}" for k, v in sorted(e.detail.items())),
                e.outcome,
            )
            for e in entries
            if e.action in actions
        ],
    )


def render_report(
    entries: Sequence[AuditEntry],
    *,
    since: datetime,
    until: datetime,
    verification: str,
    intact: bool,
    generated_at: datetime,
) -> str:
    """The report as one HTML document with an embedded SVG chart and no external resource."""
    # The period is [since, until): a report until midnight does not show the next day.
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    days = _days(since.astimezone(UTC).date(), max(last, since.astimezone(UTC).date()))
    per_day = Counter((e.time.date(), e.actor, e.action) for e in entries)
    by_domain = Counter((e.time.date(), d) for e in entries for d in e.domains)
    by_purpose = Counter((e.time.date(), e.purpose) for e in entries)
    refusals = [e for e in entries if e.outcome != "ok"]
    status = "ok" if intact else "bad"
    sections = [
        f"<h1>tiers access report</h1><p>Period {escape(since.isoformat())} to "
        f"{escape(until.isoformat())}. Generated {escape(generated_at.isoformat())}.</p>",
        f'<h2>Log verification</h2><p class="{status}">{escape(verification)}</p>',
        f"<h2>Accesses over time</h2><p>{len(entries)} accesses, {len(refusals)} refused or "
        f"failed.</p>{_chart(entries, days)}"
        '<p><span style="color:#3b82f6">■</span> accepted '
        '<span style="color:#dc2626">■</span> refused or failed</p>',
        "<h2>By day, actor and action</h2>"
        + _table(
            ["day", "actor", "action", "count"],
            [(d, a, x, n) for (d, a, x), n in sorted(per_day.items())],
        ),
        "<h2>By day and domain</h2>"
        + _table(
            ["day", "domain", "count"], [(d, x, n) for (d, x), n in sorted(by_domain.items())]
        ),
        "<h2>By day and purpose</h2>"
        + _table(
            ["day", "purpose", "count"], [(d, x, n) for (d, x), n in sorted(by_purpose.items())]
        ),
        "<h2>Refusals and failures</h2>"
        + _table(
            ["seq", "time", "actor", "role", "action", "outcome", "code"],
            [
                (e.seq, e.time.isoformat(), e.actor, e.role, e.action, e.outcome, e.code or "")
                for e in refusals
            ],
        ),
        "<h2>Key events</h2>" + _events(entries, KEY_EVENTS),
        "<h2>Clients: who may hold keys</h2><p>Made on the host by the operator (actor "
        "<code>operator:…</code>), or asked for by an admin client of the API and approved by "
        "another admin.</p>" + _events(entries, CLIENT_EVENTS),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>tiers access report</title><style>{_STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )
