"""The access report for a regulator: calls and identifiers processed, refusals, alerts,
changes, charts (pure: entries in, a summary, JSON and one HTML document out).

The charts are drawn by pygal as SVG and embedded as images (``data:`` URIs): the document
needs no script, no style sheet and no network, opened from a disk or shown in the console
under its Content-Security-Policy.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

import pygal
from pygal.style import Style

from audit.actions import CHANGE_EVENTS, identifiers
from audit.entry import AuditEntry

__all__ = ["Report", "render_report", "report_body", "summarise"]
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #bbb;padding:.25rem .6rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:bold}
img.chart{max-width:100%;height:auto}
"""
_DAYS_CHARTED = 92
_CHART_STYLE = Style(
    background="white",
    plot_background="white",
    colors=("#2563eb", "#dc2626", "#059669"),
    font_family="sans-serif",
)


@dataclass(frozen=True, slots=True)
class Tally:
    """Calls (and of them refused or failed) and identifiers processed."""

    calls: int = 0
    refused: int = 0
    identifiers: int = 0

    def add(self, entry: AuditEntry) -> Tally:
        bad = entry.outcome != "ok"
        counted = 0 if bad else identifiers(entry)
        return Tally(self.calls + 1, self.refused + int(bad), self.identifiers + counted)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "refused": self.refused, "identifiers": self.identifiers}


def _tally(entries: Iterable[AuditEntry], key: Any) -> dict[tuple[str, ...], Tally]:
    """Tallies by ``key(entry)`` (a tuple of strings, or a list of them for multi-valued)."""
    found: dict[tuple[str, ...], Tally] = {}
    for entry in entries:
        keys = key(entry)
        for k in keys if isinstance(keys, list) else [keys]:
            found[k] = found.get(k, Tally()).add(entry)
    return dict(sorted(found.items()))


@dataclass(frozen=True, slots=True)
class Report:
    """What the report says (:func:`summarise`)."""

    since: datetime
    until: datetime
    generated_at: datetime
    verification: str
    intact: bool
    days: tuple[date, ...]
    total: Tally
    per_day: Mapping[tuple[str, ...], Tally]
    per_actor: Mapping[tuple[str, ...], Tally]
    per_action: Mapping[tuple[str, ...], Tally]
    per_domain: Mapping[tuple[str, ...], Tally]
    per_purpose: Mapping[tuple[str, ...], Tally]
    refusals: tuple[AuditEntry, ...]
    changes: tuple[AuditEntry, ...]
    alerts: tuple[Mapping[str, Any], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``GET /v1/audit/report?format=json``)."""

        def rows(table: Mapping[tuple[str, ...], Tally], *names: str) -> list[dict[str, Any]]:
            return [dict(zip(names, k, strict=True)) | t.as_dict() for k, t in table.items()]

        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "generated_at": _iso(self.generated_at),
            "verification": {"intact": self.intact, "summary": self.verification},
            "total": self.total.as_dict(),
            "per_day": rows(self.per_day, "day"),
            "per_actor": rows(self.per_actor, "day", "actor", "role"),
            "per_action": rows(self.per_action, "day", "action"),
            "per_domain": rows(self.per_domain, "day", "domain"),
            "per_purpose": rows(self.per_purpose, "day", "purpose"),
            "refusals": [_brief(e) for e in self.refusals],
            "changes": [_brief(e) for e in self.changes],
            "alerts": [dict(a) for a in self.alerts],
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _brief(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": _iso(entry.time),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "domains": list(entry.domains),
        "outcome": entry.outcome,
        "code": entry.code,
        "detail": dict(entry.detail),
    }


def summarise(
    entries: Sequence[AuditEntry],
    *,
    since: datetime,
    until: datetime,
    verification: str,
    intact: bool,
    generated_at: datetime,
    alerts: Sequence[Mapping[str, Any]] = (),
) -> Report:
    """Tally ``entries`` (those of the period [since, until)) by day and by each of actor,
    action, domain and purpose."""
    # The charts span the period's days that hold entries (a report "since 2020" starts at
    # the first entry); past _DAYS_CHARTED days they go by month.
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    first = since.astimezone(UTC).date()
    if entries:
        first = max(first, min(e.time.astimezone(UTC).date() for e in entries))
        last = min(last, max(e.time.astimezone(UTC).date() for e in entries))
    days = tuple(first + timedelta(days=i) for i in range((max(last, first) - first).days + 1))
    def day(e: AuditEntry) -> str:
        return e.time.astimezone(UTC).date().isoformat()

    return Report(
        since=since,
        until=until,
        generated_at=generated_at,
        verification=verification,
        intact=intact,
        days=days,
        total=_tally(entries, lambda e: ("all",)).get(("all",), Tally()),
        per_day=_tally(entries, lambda e: (day(e),)),
        per_actor=_tally(entries, lambda e: (day(e), e.actor, e.role)),
        per_action=_tally(entries, lambda e: (day(e), e.action)),
        per_domain=_tally(entries, lambda e: [(day(e), d) for d in e.domains]),
        per_purpose=_tally(entries, lambda e: (day(e), e.purpose)),
        refusals=tuple(e for e in entries if e.outcome != "ok"),
        changes=tuple(e for e in entries if e.action in CHANGE_EVENTS),
        alerts=tuple(alerts),
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
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


def _tallies(title: str, names: Sequence[str], table: Mapping[tuple[str, ...], Tally]) -> str:
    return f"<h2>{escape(title)}</h2>" + _table(
        [*names, "calls", "refused or failed", "identifiers"],
        [(*k, t.calls, t.refused, t.identifiers) for k, t in table.items()],
    )


def _image(svg: str, label: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (
        f'<img class="chart" alt="{escape(label)}" width="760" height="280" '
        f'src="data:image/svg+xml;base64,{data}">'
    )


def _buckets(report: Report) -> tuple[list[str], list[Tally]]:
    """The charts' bars: one a day, or one a month past :data:`_DAYS_CHARTED` days."""
    monthly = len(report.days) > _DAYS_CHARTED
    labels = list(dict.fromkeys(d.isoformat()[: 7 if monthly else 10] for d in report.days))
    sums = {label: Tally() for label in labels}
    for (day,), tally in report.per_day.items():
        label = day[: 7 if monthly else 10]
        if label in sums:
            held = sums[label]
            sums[label] = Tally(
                held.calls + tally.calls,
                held.refused + tally.refused,
                held.identifiers + tally.identifiers,
            )
    return labels, [sums[label] for label in labels]


def charts(report: Report) -> str:
    """Calls (accepted and refused) and identifiers processed, per day, as two images."""
    labels, tallies = _buckets(report)
    options = {
        "js": [],
        "disable_xml_declaration": True,
        "width": 760,
        "height": 280,
        "style": _CHART_STYLE,
        "x_label_rotation": 30,
        "show_minor_x_labels": len(labels) <= 16,
        "x_labels_major_every": max(len(labels) // 8, 1),
        "legend_at_bottom": True,
    }
    calls = pygal.StackedBar(**options, title="Calls")
    calls.x_labels = labels
    calls.add("accepted", [t.calls - t.refused for t in tallies])
    calls.add("refused or failed", [t.refused for t in tallies])
    volume = pygal.Bar(**options, title="Identifiers processed")
    volume.x_labels = labels
    volume.add("identifiers", [t.identifiers for t in tallies])
    return _image(calls.render(is_unicode=True), "calls per day, accepted and refused") + _image(
        volume.render(is_unicode=True), "identifiers processed per day"
    )


def _changes(entries: Sequence[AuditEntry]) -> str:
    return _table(
        ["seq", "time", "actor", "where", "action", "domains", "detail", "outcome"],
        [
            (
                e.seq,
                _iso(e.time),
                e.actor,
                "host" if e.actor.startswith("operator:") else "API",
                e.action,
                " ".join(e.domains),
                " ".join(f"{k}={v}" for k, v in sorted(e.detail.items())),
                e.outcome,
            )
            for e in entries
        ],
    )


def report_body(report: Report) -> str:
    """The report's sections (the console shows them inside its own page)."""
    status = "ok" if report.intact else "bad"
    total = report.total
    alerts = [
        (str(a["hour"]), str(a["kind"]), str(a["actor"]), int(a["observed"]), int(a["threshold"]))
        for a in report.alerts
    ]
    return "".join(
        [
            f"<p>Period {escape(_iso(report.since))} to {escape(_iso(report.until))}. "
            f"Generated {escape(_iso(report.generated_at))}.</p>",
            f'<h2>Log verification</h2><p class="{status}">{escape(report.verification)}</p>',
            f"<h2>Activity</h2><p>{total.calls} calls, {total.refused} refused or failed; "
            f"{total.identifiers} identifiers processed.</p>{charts(report)}",
            "<h2>Alerts</h2>"
            + (
                _table(["hour", "kind", "actor", "observed", "threshold"], alerts)
                if alerts
                else "<p>No alert in the period.</p>"
            ),
            _tallies("By day", ["day"], report.per_day),
            _tallies("By day and actor", ["day", "actor", "role"], report.per_actor),
            _tallies("By day and action", ["day", "action"], report.per_action),
            _tallies("By day and domain", ["day", "domain"], report.per_domain),
            _tallies("By day and purpose", ["day", "purpose"], report.per_purpose),
            "<h2>Refusals and failures</h2>"
            + _table(
                ["seq", "time", "actor", "role", "action", "outcome", "code"],
                [
                    (e.seq, _iso(e.time), e.actor, e.role, e.action, e.outcome, e.code or "")
                    for e in report.refusals
                ],
            ),
            "<h2>Changes: domains, keys, clients, policy</h2><p>Made on the host by the "
            "operator (actor <code>operator:…</code>), or through the API by an admin (a new "
            "client or key for a client is approved by a second admin).</p>"
            + _changes(report.changes),
        ]
    )


def render_report(report: Report) -> str:
    """The report as one HTML document, charts embedded, no external resource."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>tiers access report</title><style>{_STYLE}</style></head><body>"
        "<h1>tiers access report</h1>" + report_body(report) + "</body></html>\n"
    )
