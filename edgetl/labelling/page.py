"""The page `edgetl label` serves: one inline document, nothing fetched from elsewhere. Labels,
guesses and file names reach the page only through ``textContent`` (never as markup).

Keyboard first: 1-9 give the frame (or the selection) that class, ``u`` none of these, ``x``
discard, ``z`` undo, Enter the model's guess, arrows move, space selects, Escape clears the
selection. Every key has a button, so a mouse or a phone works too."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgetl label</title>
<style>
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--acc:#2563eb;--warn:#b45309}
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg)}
header{padding:10px 16px;border-bottom:1px solid var(--line);display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.1em;margin:0}.muted{color:var(--muted)}#left{font-weight:700}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#view{flex:2 1 420px;min-width:0}#view img{width:100%;max-height:60vh;object-fit:contain;background:#111;border-radius:8px;min-height:120px}
#side{flex:1 1 260px;min-width:0}#guess{font-size:1.4em;font-weight:700;overflow-wrap:anywhere;margin:0 0 4px}
#dup{color:var(--warn);overflow-wrap:anywhere}#said{overflow-wrap:anywhere;min-height:1.4em}
#keys{display:flex;flex-wrap:wrap;gap:6px;margin:12px 0}#newclass{display:flex;gap:6px}
#newclass input{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;min-width:0;flex:1}
button{font:inherit;padding:8px 12px;border:1px solid var(--line);border-radius:6px;background:#f9fafb;cursor:pointer;overflow-wrap:anywhere}
button kbd{font-weight:700;margin-right:6px}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(112px,1fr));gap:8px;padding:0 16px 16px}
.cell{border:3px solid transparent;border-radius:8px;padding:2px;cursor:pointer;font-size:12px}
.cell img{width:100%;aspect-ratio:1;object-fit:cover;border-radius:5px;background:#eee;display:block}
.cell.cur{border-color:var(--acc)}.cell.sel{background:#dbeafe}.cell .t{overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.cell.dup .t{color:var(--warn)}
nav{padding:0 16px 16px;display:flex;gap:8px;align-items:center}
</style></head><body>
<header><h1>edgetl label</h1><span><span id="left">-</span> left of <span id="total">-</span></span>
<span class="muted" id="into"></span><span class="muted" id="counts"></span></header>
<main>
<div id="view"><img id="big" alt="frame"></div>
<div id="side">
<p id="guess">&nbsp;</p><p class="muted" id="name"></p><p id="dup"></p>
<div id="keys"></div>
<form id="newclass"><input id="classname" placeholder="new class" maxlength="200" aria-label="new class">
<button type="submit">add class</button></form>
<p id="said" role="status"></p>
<p class="muted">Keys: 1-9 class, u none of these, x discard, z undo, Enter accept the guess, arrows move,
space select, Esc clear the selection.</p>
</div></main>
<div id="grid"></div>
<nav><button id="prev">previous page</button><button id="next">next page</button><span class="muted" id="pageinfo"></span></nav>
<script>
"use strict";
const PER_PAGE = 60;
let classes = [], items = [], cur = 0, offset = 0, left = 0;
const sel = new Set();
const $ = id => document.getElementById(id);
function text(el, s) { el.textContent = s; return el; }
function make(tag, cls, s) { const e = document.createElement(tag); if (cls) e.className = cls; if (s !== undefined) e.textContent = s; return e; }
async function call(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  return r.json();
}
async function load(keepId) {
  const r = await fetch("/api/frames?offset=" + offset + "&limit=" + PER_PAGE);
  const d = await r.json();
  classes = d.classes; items = d.frames; left = d.left;
  if (offset > 0 && items.length === 0 && left > 0) { offset = Math.max(0, offset - PER_PAGE); return load(keepId); }
  if (keepId !== undefined) { const k = items.findIndex(f => f.id === keepId); if (k >= 0) cur = k; }
  cur = Math.max(0, Math.min(cur, items.length - 1));
  text($("left"), String(left)); text($("total"), String(d.total)); text($("into"), "into " + d.into);
  text($("counts"), Object.entries(d.decided).map(([k, v]) => k + " " + v).join(", "));
  text($("pageinfo"), left ? (offset + 1) + "-" + (offset + items.length) + " of " + left : "");
  keys(); grid(); show();
}
function keys() {
  const box = $("keys"); box.replaceChildren();
  classes.forEach((c, i) => {
    const b = make("button"); if (i < 9) b.append(make("kbd", "", String(i + 1)));
    b.append(document.createTextNode(c)); b.dataset.cls = String(i);
    b.onclick = () => decide("label", c); box.append(b);
  });
  for (const [k, name, fn] of [["Enter", "accept guess", () => decide("accept")], ["u", "none of these", () => decide("unknown")],
                               ["x", "discard", () => decide("discard")], ["z", "undo", undo],
                               ["space", "select", () => { if (items[cur]) toggle(items[cur].id); grid(); show(); }]]) {
    const b = make("button"); b.append(make("kbd", "", k)); b.append(document.createTextNode(name)); b.onclick = fn; box.append(b);
  }
}
function grid() {
  const g = $("grid"); g.replaceChildren();
  items.forEach((f, i) => {
    const c = make("div", "cell" + (i === cur ? " cur" : "") + (sel.has(f.id) ? " sel" : "") + (f.duplicate ? " dup" : ""));
    const img = make("img"); img.loading = "lazy"; img.alt = f.name; img.src = "/thumb/" + f.id;
    c.append(img, make("div", "t", f.guess ? f.guess + " " + f.score.toFixed(2) : "no guess"));
    c.title = f.name; c.dataset.id = String(f.id);
    c.onclick = e => { if (e.shiftKey || e.ctrlKey || e.metaKey) toggle(f.id); cur = i; grid(); show(); };
    g.append(c);
  });
}
function show() {
  const f = items[cur];
  if (!f) { $("big").removeAttribute("src"); text($("guess"), left ? "" : "all frames labelled"); text($("name"), ""); text($("dup"), ""); return; }
  $("big").src = "/image/" + f.id;
  text($("guess"), f.guess ? f.guess + " " + f.score.toFixed(2) + (f.unknown ? " (answered unknown)" : "") : "no guess");
  text($("name"), f.name + (sel.size ? " - " + sel.size + " selected" : ""));
  text($("dup"), f.duplicate ? "already in the dataset as " + f.duplicate : "");
}
function toggle(id) { if (sel.has(id)) sel.delete(id); else sel.add(id); }
let queue = Promise.resolve();
function later(fn) { queue = queue.then(fn).catch(e => text($("said"), "the server did not answer: " + e)); }
function decide(action, label) { later(() => decideNow(action, label)); }
function undo() { later(undoNow); }
async function decideNow(action, label) {
  const f = items[cur]; if (!f) return;
  const ids = sel.size ? Array.from(sel) : [f.id];
  const d = await call("/api/decide", {frames: ids, action: action, label: label || ""});
  const bad = d.outcomes.filter(o => !o.ok);
  text($("said"), bad.length ? bad.map(o => o.said).join("; ") : (ids.length + " moved: " + d.outcomes[d.outcomes.length - 1].said));
  sel.clear(); await load();
}
async function undoNow() {
  const d = await call("/api/undo");
  text($("said"), d.said); await load(d.ok ? d.frame : undefined);
}
document.addEventListener("keydown", e => {
  if (e.altKey || e.ctrlKey || e.metaKey || e.target.tagName === "INPUT") return;  // typing a class name
  const cols = Math.max(1, Math.round($("grid").clientWidth / 120));
  let used = true;
  if (/^[1-9]$/.test(e.key) && Number(e.key) <= classes.length) decide("label", classes[Number(e.key) - 1]);
  else if (e.key === "u") decide("unknown");
  else if (e.key === "x") decide("discard");
  else if (e.key === "z") undo();
  else if (e.key === "Enter") decide("accept");
  else if (e.key === "ArrowRight") cur = Math.min(items.length - 1, cur + 1);
  else if (e.key === "ArrowLeft") cur = Math.max(0, cur - 1);
  else if (e.key === "ArrowDown") cur = Math.min(items.length - 1, cur + cols);
  else if (e.key === "ArrowUp") cur = Math.max(0, cur - cols);
  else if (e.key === " ") { if (items[cur]) toggle(items[cur].id); }
  else if (e.key === "Escape") sel.clear();
  else used = false;
  if (used) { e.preventDefault(); grid(); show(); }
});
$("newclass").onsubmit = e => {
  e.preventDefault();
  const name = $("classname").value;
  later(async () => { const d = await call("/api/classes", {name: name}); text($("said"), d.said); if (d.ok) $("classname").value = ""; await load(); });
};
$("next").onclick = () => { if (offset + PER_PAGE < left) { offset += PER_PAGE; cur = 0; load(); } };
$("prev").onclick = () => { if (offset > 0) { offset = Math.max(0, offset - PER_PAGE); cur = 0; load(); } };
load();
</script></body></html>
"""
