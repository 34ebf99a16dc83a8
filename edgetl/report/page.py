"""One self-contained HTML page per run (and one comparing several): styles, script and pictures
inline, nothing fetched, so it opens offline and from an e-mail attachment. Every value that came
from a file (class names, paths, notes) is HTML-escaped."""
from __future__ import annotations

import base64
import hashlib
import os
import time
from html import escape
from pathlib import Path

from edgetl.atomic import write_atomic
from edgetl import __version__
from edgetl.report.facts import CHECKED, RunFacts, gather, ship_this
from edgetl.report.svg import bar_chart, line_chart
from edgetl.runs import RunFolder

MAX_MISTAKES = 48
MAX_MATRIX_CLASSES = 30
"""Beyond this many classes the confusion matrix (classes squared cells: a million for 1,000
classes, a page no browser draws) gives way to the most confused pairs."""
MAX_PAIRS = 50
"""Thumbnails shown at most; the page gives the full count."""

_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--ok:#15803d;--bad:#b91c1c;--accent:#2563eb}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);
margin:0 auto;max-width:1100px;padding:16px}h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid
var(--line);padding-bottom:.2em}.muted{color:var(--muted)}.stats{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.stat{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:130px}.stat b{display:block;font-size:1.6em}
.ship{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:8px;padding:10px 14px;margin:12px 0}
.warn{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:8px 12px;margin:8px 0}
.good{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:8px;padding:8px 12px;margin:8px 0}
p.bad{background:#fef2f2;border:1px solid #fecaca;border-radius:8px;padding:8px 12px;margin:8px 0}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{cursor:pointer;user-select:none;background:#f9fafb}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.ok{color:var(--ok)}td.bad{color:var(--bad)}td.warn{color:#b45309}td.best{font-weight:700;background:#ecfdf5}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts>*{min-width:0;max-width:100%}code,.path{overflow-wrap:anywhere}.chart{width:100%;max-width:530px;height:auto;border:1px solid var(--line);
border-radius:8px}.ct{font-weight:600;font-size:13px}.ax{font-size:11px;fill:var(--muted)}.grid{stroke:var(--line)}
.mark{stroke:#9ca3af;stroke-dasharray:4 3}.best{fill:#16a34a;stroke:white;stroke-width:1.5}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumb{width:132px;font-size:12px}
.thumb div{overflow-wrap:anywhere}.thumb img{width:128px;height:128px;
object-fit:cover;border-radius:6px;border:2px solid var(--bad)}.cm td{min-width:48px}
@media (max-width:600px){body{padding:8px;font-size:14px}.stat{min-width:44%}}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=!th.classList.contains('sorted-asc');t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
    th.classList.add(asc?'sorted-asc':'sorted-desc');var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,y=b.cells[i].dataset.v||b.cells[i].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c});
    rows.forEach(function(r){body.appendChild(r)})})})});
"""


_SORT_JS_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(_SORT_JS.encode()).digest()).decode() + "'"
"""The page runs its own sorting script and nothing else: no inline handler, no injected script."""


def _delta(drop) -> float | None:
    """Accuracy change in points from a drop, rounded (never -0.00)."""
    n = _number(drop)
    return round(-n, 2) + 0.0 if n is not None else None


def _mb(size) -> float | None:
    n = _number(size)
    return n / 1e6 if n is not None else None


def _confused_pairs(cm, labels: list) -> str:
    """The most frequent (true, predicted) mistakes, with how many pairs there are in all."""
    pairs = sorted(((n, i, j) for i, row in enumerate(cm) for j, v in enumerate(row)
                    if i != j and (n := _number(v)) and i < len(labels) and j < len(labels)), reverse=True)
    rows = [[_cell(labels[i]), _cell(labels[j]), _cell(n)] for n, i, j in pairs[:MAX_PAIRS]]
    shown = (f"the {min(MAX_PAIRS, len(pairs))} most frequent of {len(pairs)} confused pairs"
             if pairs else "no confused pair")
    return (f"<h3>Most confused pairs (val)</h3><p class='muted'>{len(labels)} classes: {shown} instead of a "
            f"{len(labels)}x{len(labels)} matrix.</p>" + _table(["true", "predicted", "images"], rows))


def _number(value) -> float | int | None:
    """``value`` when it is a real number; None for anything else a file may hold in its place
    (a string, a list, markup): numbers are type-checked, never trusted to be numbers."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value, fmt: str = "", missing: str = "?") -> str:
    """A number formatted, or ``missing``: the only way a figure from a file reaches the page."""
    n = _number(value)
    return escape(format(n, fmt)) if n is not None else escape(missing)


def _cell(value, fmt: str = "", cls: str = "") -> str:
    """A table cell; numbers keep their raw value for sorting."""
    if value is None:
        return '<td data-v="">—</td>'
    shown = format(value, fmt) if fmt and isinstance(value, (int, float)) else str(value)
    sort = f' data-v="{escape(str(value))}"' if _number(value) is not None else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<td{sort}{klass}>{escape(shown)}</td>"


def _table(headers: list[str], rows: list[list[str]], cls: str = "sortable", table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f'<div class="scroll"><table class="{cls}"{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _thumbnail(path: str, side: int = 128) -> str | None:
    """A small JPEG of an image as a data: URI, or None when the file cannot be read now."""
    from edgetl.image import DecodeError, cv2, decode, resize

    try:
        rgb = decode(path)
    except (DecodeError, OSError):
        return None
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    small = resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)))
    ok, data = cv2().imencode(".jpg", cv2().cvtColor(small, cv2().COLOR_RGB2BGR), [cv2().IMWRITE_JPEG_QUALITY, 80])
    return f"data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode()}" if ok else None


def _header(f: RunFacts) -> str:
    m = f.metrics
    stats = [("val accuracy", m.get("val_accuracy"), ".4f"), ("test accuracy", m.get("test_accuracy"), ".4f"),
             ("classes", len(f.classes) or None, "d"),
             ("best epoch", (m.get("best") or {}).get("epoch"), "d")]
    tiles = "".join(f'<div class="stat"><span class="muted">{escape(k)}</span><b id="{k.replace(" ", "-")}">'
                    f'{_fmt(v, fmt)}</b></div>' for k, v, fmt in stats if v is not None)
    ship = ship_this(f)
    if f.export.get("chance_warning"):
        ship_html = f'<div class="warn" id="ship-this">Nothing to ship: {escape(str(f.export["chance_warning"]))}.</div>'
    elif ship:
        lines = "".join(f"<div><b>Ship this</b> for {escape(target)}: <code>{escape(str(c['file']))}</code> "
                        f"({_fmt(c.get('accuracy'), '.4f')} accuracy, {_fmt(_mb(c.get('size_bytes')), '.2f')} MB, "
                        f"{escape(str(ms))} here)</div>" for target, (c, ms) in ship.items())
        ship_html = f'<div class="ship" id="ship-this">{lines}</div>'
    elif f.export:
        ship_html = '<div class="warn" id="ship-this">No artifact passed its gates: nothing to ship yet.</div>'
    else:
        ship_html = (f'<div class="warn" id="ship-this">Not exported yet: <code>edgetl export {escape(str(f.path))}'
                     f' --all</code> makes and verifies every format.</div>')
    backbone = f.config.get("backbone", "?")
    return (f"<h1>{escape(f.name)}</h1><div class='muted path'>{escape(str(backbone))} at "
            f"{escape(str(f.config.get('size', '?')))} px &middot; {escape(str(f.path))}</div><div class='stats'>{tiles}</div>{ship_html}")


def _data(f: RunFacts) -> str:
    classes = f.audit.get("classes") or {}
    if not classes:
        return ""
    splits = sorted({s for per in classes.values() for s in per}, key=["train", "val", "test"].index)
    rows = [[_cell(c)] + [_cell(per.get(s, 0)) for s in splits] + [_cell(sum(per.values()))] for c, per in classes.items()]
    problems = [p for p in f.audit.get("problems", []) if p.get("severity") in ("error", "warning")]
    listing = "".join(f"<li><code>{escape(Path(p['path']).name)}</code>: {escape(p['reason'])}</li>" for p in problems[:50])
    more = f"<p class='muted'>and {len(problems) - 50} more (edgetl data check)</p>" if len(problems) > 50 else ""
    flagged = (f"<h3>Flagged or skipped ({len(problems)})</h3><ul>{listing}</ul>{more}" if problems
               else "<p>The audit flagged nothing.</p>")
    return "<h2>Data</h2>" + _table(["class", *splits, "total"], rows) + _harvested(f) + flagged


def _harvested(f: RunFacts) -> str:
    """How many of the run's images are frames a device doubted and `edgetl harvest` brought home
    (they keep the outbox's names), per split and class."""
    from edgetl.live.outbox import NAME

    records = [r for r in f.audit.get("records") or [] if isinstance(r, dict) and isinstance(r.get("path"), str)
               and NAME.fullmatch(Path(r["path"]).name)]
    if not records:
        return ""
    names = f.classes
    per_split: dict[str, int] = {}
    per_class: dict[str, int] = {}
    for r in records:
        per_split[str(r.get("split"))] = per_split.get(str(r.get("split")), 0) + 1
        label = r.get("label")
        name = names[label] if isinstance(label, int) and 0 <= label < len(names) else str(label)
        per_class[name] = per_class.get(name, 0) + 1
    splits = ", ".join(f"{escape(k)} {v}" for k, v in per_split.items())
    classes = ", ".join(f"{escape(k)} {v}" for k, v in sorted(per_class.items()))
    return (f"<p id='harvested'>{len(records)} of these images are frames a device doubted, brought home by "
            f"<code>edgetl harvest</code> ({splits}; by class: {classes}).</p>")


def _training(f: RunFacts) -> str:
    if not f.history:
        return ""
    xs = [h.epoch + 1 for h in f.history]
    stage2 = next((h.epoch + 1 for h in f.history if h.stage == 2), None)
    marks = [(stage2 - 0.5, "fine-tuning")] if stage2 else []
    best = (f.metrics.get("best") or {}).get("epoch")
    best_h = next((h for h in f.history if h.epoch + 1 == best), None)
    charts = []
    for metric, rng in (("accuracy", (0.0, 1.0)), ("loss", None)):
        pts = [(best, best_h.figure(f"val_{metric}"), "best")] if best_h else []
        charts.append(line_chart(metric, xs, {f"train {metric}": [h.figure(metric) for h in f.history],
                                              f"val {metric}": [h.figure(f"val_{metric}") for h in f.history]},
                                 rng, marks, pts))
    out = "<h2>Training</h2><div class='charts'>" + "".join(charts) + "</div>"
    out += (f"<p class='muted'>Stage 1: {escape(str(f.metrics.get('stage1_path', '')))}; "
            f"{_fmt((f.metrics.get('epochs') or {}).get('stage1'), 'd', '0')} + "
            f"{_fmt((f.metrics.get('epochs') or {}).get('stage2'), 'd', '0')} "
            f"epochs; the best epoch (lowest val loss, across both stages) is the model.</p>")
    per = f.metrics.get("per_class") or {}
    if per:
        out += "<h3>Per class (val)</h3>" + _table(["class", "precision", "recall", "support"], [
            [_cell(c), _cell(v["precision"], ".3f"), _cell(v["recall"], ".3f"), _cell(v["support"])] for c, v in per.items()])
    cm, labels = f.metrics.get("confusion"), list(per)
    if cm and labels and len(labels) > MAX_MATRIX_CLASSES:
        out += _confused_pairs(cm, labels)
    elif cm and labels:
        peak = max((_number(v) or 0 for r in cm for v in r), default=0) or 1
        rows = []
        for label, row in zip(labels, cm):
            cells = "".join(f'<td style="background:rgba(37,99,235,{(_number(v) or 0) / peak * 0.6:.2f})">{_fmt(v, "d")}</td>'
                        for v in row)
            rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
        head = "".join(f"<th>{escape(label)}</th>" for label in labels)
        out += (f"<h3>Confusion matrix (val; rows true, columns predicted)</h3><div class='scroll'><table class='cm'>"
                f"<thead><tr><th>true \\ predicted</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    return out


def _confidence(f: RunFacts) -> str:
    """The calibration and the "unknown" threshold training chose (metrics.json's ``confidence``)."""
    c = f.metrics.get("confidence")
    if not isinstance(c, dict) or not isinstance(c.get("manifest"), dict):
        return ""
    m = c["manifest"]
    centres = [(b + 0.5) / 10 for b in range(10)]

    def by_bin(bins) -> list:
        got = {round((b["low"] + b["high"]) / 2, 2): b["accuracy"] for b in (bins if isinstance(bins, list) else [])
               if isinstance(b, dict) and all(_number(b.get(k)) is not None for k in ("low", "high", "accuracy"))}
        return [got.get(round(x, 2)) for x in centres]

    unit = [0.0, 0.25, 0.5, 0.75, 1.0]
    # accuracy per top-score bin: on the diagonal when the scores are calibrated
    charts = [line_chart("reliability (val)", centres,
                         {"calibrated": centres, "as trained": by_bin(c.get("reliability_before")),
                          "with temperature": by_bin(c.get("reliability_after"))}, (0.0, 1.0),
                         x_ticks=unit, x_range=(0.0, 1.0))]
    curve = [r for r in c.get("risk_coverage") or [] if isinstance(r, dict)
             and _number(r.get("coverage")) is not None and _number(r.get("accuracy")) is not None]
    if curve:
        xs = [r["coverage"] for r in reversed(curve)]
        ys = [r["accuracy"] for r in reversed(curve)]
        # the threshold's place on the curve: the accuracy of the val images it answers
        at = _number(m.get("coverage"))
        point = [(at, min(zip(xs, ys), key=lambda xy: abs(xy[0] - at))[1], "threshold")] if at is not None else []
        charts.append(line_chart("answered: accuracy vs share (val)", xs, {"accuracy": ys}, None, (), point,
                                 x_ticks=unit, x_range=(0.0, 1.0)))
    rows = [["temperature (folded into the model)", _fmt(m.get("temperature"), ".3f")],
            ["calibration error (ECE) before -> after", f"{_fmt(m.get('ece_before'), '.3f')} -> {_fmt(m.get('ece_after'), '.3f')}"],
            ["'unknown' under the top score", _fmt(m.get("threshold"), ".3f")],
            ["precision at the threshold (target)", f"{_fmt(m.get('precision'), '.3f')} ({_fmt(m.get('min_precision'), '.2f')})"],
            ["val images answered", f"{_fmt(m.get('coverage'), '.1%')} of {_fmt(m.get('images'), 'd')}"],
            ["--unknown images rejected", f"{_fmt(m.get('unknown_rejected'), '.1%')} of {_fmt(m.get('unknown_images'), 'd')}"
             if m.get("unknown_images") else "none given"],
            ["ROC AUC (val)", _fmt(c.get("roc_auc"), ".4f")]]
    rule = m.get("feature_rule") if isinstance(m.get("feature_rule"), dict) else None
    if rule:  # every figure through _fmt: a number or a dash, never text from the file
        rows += [["rule from the classes' own images: cosine similarity to the nearest class under",
                  _fmt(rule.get("threshold"), ".3f")],
                 ["val images it answers (asked for)",
                  f"{_fmt(rule.get('answered'), '.1%')} ({_fmt(rule.get('answer_rate'), '.0%')}) of {_fmt(rule.get('images'), 'd')}"],
                 ["accuracy on those (on all)",
                  f"{_fmt(rule.get('accuracy_answered'), '.4f')} ({_fmt(rule.get('accuracy_all'), '.4f')})"],
                 ["training images behind the class means", _fmt(rule.get("class_images"), "d")]]
    note = ("<p class='muted'>Images whose features stand farther from every class than the rule allows score under "
            "the threshold in every artifact (the rule is folded into the model's scores).</p>" if rule else
            "<p class='muted'>No rule from the classes' own images (too few validation images, or a run from before "
            "it): the threshold only guards the classes' own doubtful images.</p>")
    if not m.get("unknown_images"):
        note += ("<p class='muted'>No images of none of the classes were given (train --unknown DIR) to choose the "
                 "softmax threshold with.</p>")
    return ("<h2 id='confidence'>Confidence and \"unknown\"</h2><div class='charts'>" + "".join(charts) + "</div>"
            + _table(["", "value"], [[_cell(a), f"<td>{b}</td>"] for a, b in rows], "plain") + note)


def _labels(f: RunFacts) -> str:
    """Multi-label: mAP, F1, exact match, each label's threshold and figures, the PR curves."""
    m = f.metrics.get("multi_label")
    if not isinstance(m, dict) or not isinstance(m.get("val"), dict):
        return ""
    v, thresholds = m["val"], m.get("thresholds") or []
    stats = "".join(f"<div class='stat'><b>{_fmt(v.get(k), '.3f')}</b>{escape(name)}</div>" for k, name in (
        ("map", "mAP (macro)"), ("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("exact_match", "exact match")))
    rows = []
    for i, x in enumerate(v.get("per_label") or []):
        if isinstance(x, dict):
            rows.append([_cell(str(x.get("label"))), _cell(_number(x.get("ap")), ".3f"),
                         _cell(_number(thresholds[i]) if i < len(thresholds) else None, ".3f"),
                         _cell(_number(x.get("precision")), ".3f"), _cell(_number(x.get("recall")), ".3f"),
                         _cell(_number(x.get("f1")), ".3f"), _cell(_number(x.get("support")))])
    plot = RunFolder(f.path).pr_plot
    image = (f"<img class='chart' alt='precision-recall per label' src='data:image/png;base64,"
             f"{base64.b64encode(plot.read_bytes()).decode()}'>" if plot.is_file() else "")
    return ("<h2 id='labels'>Labels (multi-label, val)</h2><div class='stats'>" + stats + "</div>"
            + _table(["label", "AP", "threshold", "precision", "recall", "F1", "support"], rows, table_id="label-figures")
            + "<p class='muted'>Each label's threshold is folded into the model: every artifact's score crosses 0.5 "
              "there, so one score threshold (0.5) decides every label for any consumer.</p>" + image)


def _mistakes(f: RunFacts) -> str:
    preds = f.predictions.get("test") or f.predictions.get("val") or []
    if not preds:
        return ""
    split = "test" if f.predictions.get("test") else "val"
    if isinstance(preds[0].get("true"), list):  # multi-label: a set of labels each
        return _label_mistakes(preds, split, f.classes)
    wrong = sorted((p for p in preds if p["pred"] != p["true"]), key=lambda p: -p["score"])
    names = f.classes
    if not wrong:
        return f"<h2>Mistakes</h2><p>Every one of the {len(preds)} {split} images is classified right.</p>"
    tiles = []
    for p in wrong[:MAX_MISTAKES]:
        src = _thumbnail(p["path"])
        img = (f'<img src="{src}" alt="{escape(Path(p["path"]).name)}">' if src
               else "<div class='muted'>(image no longer readable)</div>")
        true, pred = (names[p["true"]], names[p["pred"]]) if names else (p["true"], p["pred"])
        tiles.append(f"<div class='thumb'>{img}<div>true <b>{escape(str(true))}</b></div>"
                     f"<div>predicted <b>{escape(str(pred))}</b> {_fmt(p.get('score'), '.2f')}</div>"
                     f"<div class='muted'>{escape(Path(p['path']).name)}</div></div>")
    cap = (f"<p class='muted'>The {MAX_MISTAKES} most confident of {len(wrong)} mistakes are shown.</p>"
           if len(wrong) > MAX_MISTAKES else "")
    return (f"<h2>Mistakes</h2><p>{len(wrong)} of {len(preds)} {split} images misclassified, most confident "
            f"first.</p>{cap}<div class='thumbs'>{''.join(tiles)}</div>")


def _label_mistakes(preds: list[dict], split: str, names: list[str]) -> str:
    """Multi-label: the images whose set of labels is wrong, the surest mistakes first."""
    def said(indices) -> str:
        return ", ".join(str(names[i]) if names and isinstance(i, int) and 0 <= i < len(names) else str(i)
                         for i in indices) or "none"

    def sureness(p: dict) -> float:
        return max((abs((_number(s) or 0.5) - 0.5) for s in p.get("scores") or []), default=0.0)

    wrong = sorted((p for p in preds if p.get("pred") != p.get("true")), key=lambda p: -sureness(p))
    if not wrong:
        return f"<h2>Mistakes</h2><p>Every one of the {len(preds)} {split} images has its labels right.</p>"
    tiles = []
    for p in wrong[:MAX_MISTAKES]:
        src = _thumbnail(p["path"])
        img = (f'<img src="{src}" alt="{escape(Path(p["path"]).name)}">' if src
               else "<div class='muted'>(image no longer readable)</div>")
        tiles.append(f"<div class='thumb'>{img}<div>true <b>{escape(said(p.get('true') or []))}</b></div>"
                     f"<div>predicted <b>{escape(said(p.get('pred') or []))}</b></div>"
                     f"<div class='muted'>{escape(Path(p['path']).name)}</div></div>")
    return (f"<h2>Mistakes</h2><p>{len(wrong)} of {len(preds)} {split} images with a wrong set of labels, surest "
            f"first.</p><div class='thumbs'>{''.join(tiles)}</div>")


def _export(f: RunFacts) -> str:
    if not f.export:
        return ""
    rows = []
    for c in f.artifacts:
        fallback = c not in f.export.get("checks", [])
        kept = c.get("kept", c.get("passed"))  # ("passed": exports before 0.1 named it so)
        status = c.get("verdict") or ("passed" if kept else "refused")
        verdict = status + (f": {c['note']}" if c.get("note") else "")
        rows.append([_cell(c["file"]), _cell(c["precision"]), _cell(c["accuracy"], ".4f"),
                     _cell(_delta(c.get("drop_points")), "+.2f"), _cell(c["agreement"], ".1%"),
                     _cell(c["max_prob_diff"], ".3g"), _cell(_mb(c.get("size_bytes")), ".2f"), _cell(c["latency_ms"], ".2f"),
                     _cell(verdict + (" (int8 fallback)" if fallback else ""),
                           cls="ok" if status == "passed" else "warn" if kept else "bad")])
    warn = " ".join(str(w) for w in (f.export.get("chance_warning"), f.export.get("held_out_warning")) if w) or None
    return ("<h2>Export</h2>"
            f"<p>Each artifact run through the device runtime on {_fmt(f.export.get('images'), 'd')} held-out images and "
            f"compared with the Keras model (accuracy {_fmt(f.export.get('keras_accuracy'), '.4f')}).</p>"
            + (f"<div class='warn'>{escape(str(warn))}</div>" if warn else "")
            + _table(["file", "precision", "accuracy", "Δ pts", "agreement", "max Δp", "size MB", f"ms ({CHECKED})",
                      "verdict"], rows, table_id="export-table"))


def _int8_layers(f: RunFacts) -> str:
    """Where the int8 TFLite model loses accuracy: its error against the float model, layer by layer."""
    found = f.export.get("int8_layers") if isinstance(f.export, dict) else None
    layers = found.get("layers") if isinstance(found, dict) else None
    if not isinstance(layers, list):
        return ""
    rows = [(str(e.get("name", "?")), str(e.get("op", "?")), _number(e.get("error")), _number(e.get("added")))
            for e in layers if isinstance(e, dict)]
    rows = [r for r in rows if r[2] is not None and r[3] is not None]
    if not rows:
        return ""
    worst = sorted(range(len(rows)), key=lambda i: -rows[i][3])[:8]
    chart = line_chart("int8 error vs float, through the network", list(range(len(rows))),
                           {"error after each layer": [r[2] for r in rows]},
                           points=[(i, rows[i][2], rows[i][0]) for i in worst[:3]])
    table = _table(["layer", "op", "adds", "error after it"],
                   [[_cell(rows[i][0]), _cell(rows[i][1]), _cell(rows[i][3], "+.3f"), _cell(rows[i][2], ".3f")]
                    for i in worst], table_id="int8-layers")
    return ("<h3>Where int8 loses accuracy</h3>"
            f"<p>Each layer's output in the int8 TFLite model compared with the float model's on "
            f"{_fmt(found.get('images'), 'd')} held-back calibration images: RMS error over the output's spread "
            "(0 is exact, 1 as large as the signal), accumulated from the input. The layers that add most are "
            "the ones the selective-float fallbacks keep in float.</p>" + chart + table)


def _bench(f: RunFacts) -> str:
    if not f.bench:
        return ""
    rows, bars = [], []
    for r in f.bench:
        label = f"{r['model']} x{r.get('threads') or 'default'}"
        rows.append([_cell(r["model"]), _cell(r.get("threads") or "default"), _cell(r["device"].get("target", "local")),
                     _cell(r.get("init_ms"), ".0f"), _cell(r.get("mean_ms"), ".2f"), _cell(r.get("p50_ms"), ".2f"),
                     _cell(r.get("p90_ms"), ".2f"), _cell(r.get("p99_ms"), ".2f"), _cell(r.get("fps"), ".1f"),
                     _cell(r.get("peak_rss_mb"), ".0f")])
        if _number(r.get("p50_ms")) is not None:
            bars.append((label, r["p50_ms"]))
    devices = {}
    for r in f.bench:
        d = r.get("device", {})
        devices[d.get("target", "local")] = d
    facts = "".join(
        f"<li><b>{escape(str(t))}</b>: {escape(str(d.get('cpu') or 'not available'))}, {_fmt(d.get('cores'), 'd')} cores, "
        f"{escape(str(d.get('os') or ''))}; governor {escape(str(d.get('governor') or 'not available'))}, throttled "
        f"{escape(str(d.get('throttled') if d.get('throttled') is not None else 'not available'))}, temperature "
        f"{escape(str(d.get('temperature_c') or 'not available'))}</li>" for t, d in devices.items())
    return ("<h2>Benchmark</h2><p>The newest `edgetl bench` figure of each model, thread count and device.</p>"
            + _table(["model", "threads", "device", "init ms", "mean ms", "p50 ms", "p90 ms", "p99 ms",
                                           "FPS", "peak RSS MB"], rows, table_id="bench-table")
            + "<div class='charts'>" + bar_chart("p50 latency per inference", bars, "ms") + f"</div><ul>{facts}</ul>")


def _setting(value) -> str:
    """A setting as a person reads it: "—" when unset (not Python's None), yes/no, plain text."""
    return "—" if value is None else ("yes" if value else "no") if isinstance(value, bool) else str(value)


def _verdict(c: dict) -> str:
    """`edgetl compare`'s verdict and its figures, from comparison.json (checked as it is read)."""
    if not isinstance(c, dict) or not isinstance(c.get("line"), str):
        return ""
    rows = []
    for key in ("shared", "fresh"):
        s = c.get(key)
        if isinstance(s, dict):
            rows.append([_cell(s.get("name")), _cell(_number(s.get("images")), "d"), _cell(_number(s.get("old_accuracy")), ".3f"),
                         _cell(_number(s.get("new_accuracy")), ".3f"), _cell(_number(s.get("gained")), "d"),
                         _cell(_number(s.get("lost")), "d"), _cell(_number(s.get("old_unknown")), "d"),
                         _cell(_number(s.get("new_unknown")), "d")])
    verdict = str(c.get("verdict", ""))
    klass = {"better": "good", "worse": "bad"}.get(verdict, "warn")
    return (f"<p class='{klass}'>Compared with {escape(str(c.get('old', '?')))}: {escape(c['line'])}</p>"
            + _table(["images", "n", "old top-1", "new top-1", "gained", "lost", "old unknown", "new unknown"], rows))


def _comparison(f: RunFacts) -> str:
    return ("<h2>Against the run it replaces</h2>" + _verdict(f.comparison)) if f.comparison else ""


def _settings(f: RunFacts) -> str:
    rows = [[_cell(k), f"<td>{escape(_setting(v))}</td>"] for k, v in f.config.items()]
    versions = (f.export_manifest.get("versions") or f.run_manifest.get("versions") or {}) | {"edgetl": __version__}
    vrows = [[_cell(k), f"<td>{escape(str(v))}</td>"] for k, v in versions.items()]
    unreadable = "".join(f"<li>{escape(p)}</li>" for p in f.unreadable)
    return ("<h2>Settings and versions</h2><div class='charts'><div>" + _table(["setting", "value"], rows) + "</div><div>"
            + _table(["tool", "version"], vrows) + "</div></div>"
            + (f"<div class='warn'>Could not read: <ul>{unreadable}</ul></div>" if unreadable else ""))


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'; script-src {_SORT_JS_HASH}\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}"
            f"<p class='muted'>Written by edgetl {escape(__version__)} on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
            f"<script>{_SORT_JS}</script></body></html>")


def _write(path: Path, html: str) -> Path:
    return write_atomic(path, html, leftover_ok=True)


def write_report(run: str | Path) -> Path:
    """Write RUN/report.html: the data, training curves, confusion matrix, mistakes, export checks
    with the artifact to ship, benchmark results, settings and versions. Returns its path."""
    f = gather(run)
    body = (_header(f) + _comparison(f) + _data(f) + _training(f) + _labels(f) + _confidence(f) + _mistakes(f) + _export(f)
            + _int8_layers(f) + _bench(f) + _settings(f))
    return _write(RunFolder(f.path).page, _page(f"edgetl report: {f.name}", body))


def runs_of(path: str) -> Path | None:
    """The run folder a compared path names (a run, or a model inside one), resolved."""
    from edgetl.runs import run_of

    p = Path(path)
    found = p if RunFolder(p).is_finished_run() else run_of(p)
    return found.resolve() if found else None


def write_comparison(runs: list[str | Path], out: str | Path) -> Path:
    """Write one page comparing runs side by side: one column per run (a phone shows two or three
    at once), one row per figure (how each was trained, accuracy, per-class recall, each artifact's
    size and latency), the best of each row marked."""
    for r in runs:
        write_report(r)  # each run's own page, which the comparison links to
    facts = [gather(r) for r in runs]
    classes = sorted({c for f in facts for c in (f.metrics.get("per_class") or {})})
    files = sorted({c["file"] for f in facts for c in f.artifacts})

    def trained(f: RunFacts) -> str:
        epochs = f.metrics.get("epochs") if isinstance(f.metrics.get("epochs"), dict) else {}
        return " + ".join(str(v) for v in (epochs.get("stage1"), epochs.get("stage2")) if v is not None) or "?"

    # (label, value of a run, format, which is best: max, min or None for a setting)
    rows: list[tuple[str, object, str, object]] = [
        ("backbone", lambda f: f.config.get("backbone"), "", None),
        ("size px", lambda f: f.config.get("size"), "d", None),
        ("epochs (stage 1 + 2)", trained, "", None),
        ("val accuracy", lambda f: f.metrics.get("val_accuracy"), ".4f", max),
        *[(f"recall {c}", (lambda c: lambda f: ((f.metrics.get("per_class") or {}).get(c) or {}).get("recall"))(c),
           ".3f", max) for c in classes],
        *[(f"{n} MB", (lambda n: lambda f: next((a["size_bytes"] / 1e6 for a in f.artifacts if a["file"] == n
                                                  and _number(a.get("size_bytes")) is not None), None))(n), ".2f", min)
          for n in files],
        *[(f"{n} ms", (lambda n: lambda f: next((a["latency_ms"] for a in f.artifacts if a["file"] == n), None))(n),
           ".2f", min) for n in files],
    ]
    body_rows = []
    for label, value, fmt, pick in rows:
        values = [value(f) for f in facts]
        numbers = [v for v in values if _number(v) is not None]
        best = pick(numbers) if pick and numbers and len(facts) > 1 else None
        body_rows.append([f"<th scope='row'>{escape(label)}</th>"] + [
            _cell(v, fmt, "best" if best is not None and v == best else "") if pick or _number(v) is not None
            else f"<td>{escape('—' if v is None else str(v))}</td>" for v in values])
    links = [f"<a href='{escape(Path(os.path.relpath(RunFolder(f.path).page, Path(out).parent)).as_posix())}'>"
             f"{escape(f.name)}</a>" for f in facts]
    head = "<th></th>" + "".join(f"<th>{link}</th>" for link in links)
    table = (f'<div class="scroll"><table id="compare-table"><thead><tr>{head}</tr></thead><tbody>'
             + "".join(f"<tr>{''.join(r)}</tr>" for r in body_rows) + "</tbody></table></div>")
    # a run compared (`edgetl compare`) with another run of this page: its verdict above the table
    names = {f.path.resolve() for f in facts}
    verdicts = "".join(_verdict(f.comparison) for f in facts
                       if isinstance(f.comparison.get("old"), str) and runs_of(f.comparison["old"]) in names)
    body = (f"<h1>{len(facts)} runs side by side</h1><p class='muted'>Best of each row in bold (ms: export's check, "
            "default threads); click a run for its own report.</p>" + verdicts + table)
    return _write(Path(out), _page("edgetl: runs side by side", body))
