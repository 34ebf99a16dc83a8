"""The page `edgetl live --serve` shows: one inline document, nothing fetched from elsewhere.
Labels and file names reach the page only through ``textContent`` (never as markup)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgetl live</title>
<style>
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bar:#2563eb}
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg)}
header{padding:10px 16px;border-bottom:1px solid var(--line);display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.1em;margin:0}.muted{color:var(--muted)}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#video{flex:2 1 480px;min-width:0}#video img{width:100%;border-radius:8px;background:#111;min-height:120px}
#side{flex:1 1 280px;min-width:0}#label{font-size:2em;font-weight:700;margin:0 0 8px;overflow-wrap:anywhere}
#label.unknown{color:#d97706}ol{list-style:none;padding:0;margin:0}
li{margin:6px 0}.name{display:flex;justify-content:space-between;gap:8px}.name span:first-child{overflow-wrap:anywhere}
.bar{height:8px;background:var(--line);border-radius:4px}.bar div{height:8px;background:var(--bar);border-radius:4px;width:0}
table{border-collapse:collapse;width:100%;margin-top:12px;font-variant-numeric:tabular-nums}
td{padding:3px 0;border-bottom:1px solid var(--line)}td:last-child{text-align:right}
label{display:block;margin-top:14px}input[type=range]{width:100%}
</style></head><body>
<script type="application/json" id="facts">__FACTS__</script>
<header><h1>edgetl live</h1><span class="muted" id="model"></span><span class="muted" id="status">connecting</span></header>
<main>
<div id="video"><img src="/stream.mjpg" alt="camera"></div>
<div id="side">
<p id="label">&nbsp;</p>
<ol id="topk"></ol>
<table>
<tr><td>FPS (classified)</td><td id="fps">-</td></tr>
<tr><td>capture wait, ms</td><td id="lat-capture">-</td></tr>
<tr><td>preprocess, ms</td><td id="lat-preprocess">-</td></tr>
<tr><td>inference, ms</td><td id="lat-inference">-</td></tr>
<tr><td>dropped frames</td><td id="dropped">-</td></tr>
<tr><td>runtime</td><td id="runtime"></td></tr>
<tr><td>input</td><td id="input"></td></tr>
</table>
<label>threshold <span id="threshold-value"></span><input id="threshold" type="range" min="0" max="1" step="0.05"></label>
<p class="muted" id="labels"></p>
</div></main>
<script>
var facts = JSON.parse(document.getElementById('facts').textContent);
function text(id, value){ document.getElementById(id).textContent = value; }
text('model', facts.model + ' (' + facts.precision + ')'); text('runtime', facts.runtime); text('input', facts.input);
text('labels', facts.labels.length + ' labels: ' + facts.labels.slice(0, 20).join(', ') + (facts.labels.length > 20 ? ', ...' : ''));
var slider = document.getElementById('threshold'); slider.value = facts.threshold; text('threshold-value', facts.threshold);
slider.addEventListener('change', function(){
  fetch('/api/threshold', {method: 'POST', headers: {'Content-Type': 'application/json'},
                           body: JSON.stringify({threshold: parseFloat(slider.value)})})
    .then(function(r){ return r.json(); }).then(function(d){ text('threshold-value', d.threshold); });
});
var topk = document.getElementById('topk');
var events = new EventSource('/api/events');
events.onopen = function(){ text('status', 'live'); };
events.onerror = function(){ text('status', 'reconnecting'); };
events.onmessage = function(e){
  var r = JSON.parse(e.data);
  var label = document.getElementById('label'); label.textContent = r.label;
  label.className = r.unknown ? 'unknown' : '';
  while (topk.firstChild) topk.removeChild(topk.firstChild);
  r.top.forEach(function(t){
    var li = document.createElement('li'); var row = document.createElement('div'); row.className = 'name';
    var n = document.createElement('span'); n.textContent = t.label; var s = document.createElement('span');
    s.textContent = t.score.toFixed(3); row.appendChild(n); row.appendChild(s);
    var bar = document.createElement('div'); bar.className = 'bar'; var fill = document.createElement('div');
    fill.style.width = Math.round(t.score * 100) + '%'; bar.appendChild(fill); li.appendChild(row); li.appendChild(bar);
    topk.appendChild(li);
  });
  text('fps', r.fps.toFixed(1)); text('dropped', r.dropped);
  text('lat-capture', r.latency_ms.capture_wait.toFixed(1)); text('lat-preprocess', r.latency_ms.preprocess.toFixed(1));
  text('lat-inference', r.latency_ms.inference.toFixed(2));
};
</script></body></html>
"""
