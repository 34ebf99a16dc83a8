"""OUT/tune.html: the search's answer, its chart and every candidate in a sortable table. Every text
that came from a user or a device (paths, the host) is HTML-escaped."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from edgetl.report.page import _cell, _page, _table, _write
from edgetl.tuning.record import CHART, PAGE, Status, TuneRecord

_ORDER = [Status.CHOSEN, Status.TRAINED, Status.FAILED, Status.RANKED, Status.OVER_BUDGET, Status.NOT_MEASURED,
          Status.NO_WEIGHTS]


def write_tune_page(record: TuneRecord, folder: Path) -> Path:
    """Write ``folder``/tune.html from the record and the chart beside it."""
    chosen = next((r for r in record.rows if r.status == Status.CHOSEN), None)
    if chosen is not None:
        answer = (f"<div class='ship'><b>{escape(record.recommendation)}</b><br>"
                  f"run: <span class='path'>{escape(chosen.run or '')}</span>, artifact "
                  f"<span class='path'>{escape(Path(chosen.artifact or '').name)}</span></div>")
    else:
        answer = "<p class='bad'>No candidate was chosen: " + escape(record.stopped or "none was trained within budget") + "</p>"
    if record.stopped:
        answer += f"<p class='warn'>{escape(record.stopped)}: continue with <code>edgetl tune --resume --out " \
                  f"{escape(str(folder))}</code></p>"
    counts = {s: sum(r.status == s for r in record.rows) for s in _ORDER}
    stats = "".join(f"<div class='stat'><b>{n}</b>{escape(str(s))}</div>" for s, n in counts.items() if n)
    chart = folder / CHART
    image = (f"<img class='chart' style='max-width:820px' alt='accuracy against latency' "
             f"src='data:image/png;base64,{base64.b64encode(chart.read_bytes()).decode()}'>") if chart.is_file() else ""
    rows = sorted(record.rows, key=lambda r: (_ORDER.index(Status(r.status)), -(r.accuracy or r.estimate or 0),
                                              r.latency_ms or 0))
    table = _table(["candidate", "status", "latency ms (untrained)", "estimate", "accuracy", "latency ms (trained)",
                    "note"],
                   [[_cell(r.candidate.describe()), _cell(r.status, cls="ok" if r.status == Status.CHOSEN else
                                                          "bad" if r.status == Status.OVER_BUDGET else ""),
                     _cell(r.latency_ms, ".2f"), _cell(r.estimate, ".3f"), _cell(r.accuracy, ".3f"),
                     _cell(r.device_ms, ".2f"), _cell(r.note)] for r in rows], table_id="candidates")
    spent = sum(record.seconds.values())
    body = (f"<h1>edgetl tune</h1><p class='muted'>{escape(record.data)} on {escape(record.where)}: budget "
            f"{record.budget_ms:g} ms ({escape(record.statistic)}), weights {escape(Path(record.weights).name)}, "
            f"{spent / 60:.1f} min of search</p>{answer}<div class='stats'>{stats}</div>{image}"
            f"<h2>Candidates</h2><p class='muted'>Latency of an untrained artifact of each candidate on the device; "
            f"the estimate is a linear classifier on the frozen backbone's features; accuracy is the trained artifact's "
            f"on the held-out images, as export verified it.</p>{table}")
    return _write(folder / PAGE, _page("edgetl tune", body))
