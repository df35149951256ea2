// The web page at GET /: one self-contained HTML document (inline style and script, no external assets): a task
// selector, a text box and a button; the answer is shown as a table (triplets, pairs or entities), the source text
// with each entity highlighted at its spans, and the raw JSON. `/?task=T&text=...&run=1` pre-fills the form and submits.
// With several models served, a model selector (sent as "model"); when the server needs an API key (--api-key-env /
// --api-key-file), a key field: the key stays in this tab's sessionStorage (gone when the tab closes, never in the
// URL or the page) and goes out as "Authorization: Bearer <key>".
import type { TaskInfo } from './tasks.js';

/** JSON safe to place inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: 12px 24px; }
header h1 { font-size: 19px; margin: 0; } header small { opacity: .8; }
main { max-width: 1040px; margin: 0 auto; padding: 16px 24px; }
label { font-weight: 600; display: block; margin: 10px 0 4px; }
select, textarea, button, input { font: inherit; }
#key { width: 320px; padding: 4px 6px; border: 1px solid #b8c0cc; border-radius: 4px; }
textarea { width: 100%; box-sizing: border-box; min-height: 110px; padding: 8px; border: 1px solid #b8c0cc; border-radius: 4px; }
button { margin-top: 8px; padding: 7px 18px; background: #1f6feb; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
button:disabled { background: #8aa7d6; }
#status { margin-left: 12px; color: #555; } #status.err { color: #b3261e; font-weight: 600; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 16px; margin-top: 14px; }
h2 { font-size: 16px; margin: 4px 0 8px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6e8ec; vertical-align: top; }
th { background: #eef1f5; }
.source { white-space: pre-wrap; line-height: 1.9; }
mark { border-radius: 3px; padding: 1px 2px; }
.r0 { background: #ffe08a; } .r1 { background: #a8e6b8; } .r2 { background: #b8d4ff; } .r3 { background: #f5b8d8; }
.legend mark { margin-right: 8px; }
pre { background: #f0f2f5; padding: 8px; overflow: auto; max-height: 320px; font-size: 12px; }
.muted { color: #777; }
`;

// Plain ES2017 run in the browser; no template literals so it can sit inside this TypeScript template.
const SCRIPT = `
var TASKS = JSON.parse(document.getElementById('tasks').textContent);
var $ = function (id) { return document.getElementById(id); };
function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
TASKS.forEach(function (t) { var o = el('option', t.name); o.value = t.name; $('task').appendChild(o); });
function describe() {
  var t = TASKS.filter(function (x) { return x.name === $('task').value; })[0];
  $('instruction').textContent = t ? t.instruction : '';
}
$('task').addEventListener('change', describe);
// the API key (only when the server needs one): kept in this tab's sessionStorage, sent as a Bearer token
var KEY_ITEM = 'medlora-api-key';
function keyStore() { try { return window.sessionStorage; } catch (e) { return null; } }
if ($('key')) {
  var ks = keyStore();
  if (ks && ks.getItem(KEY_ITEM)) $('key').value = ks.getItem(KEY_ITEM);
  $('key').addEventListener('input', function () {
    var s = keyStore();
    if (!s) return;
    if ($('key').value.trim()) s.setItem(KEY_ITEM, $('key').value.trim()); else s.removeItem(KEY_ITEM);
  });
}
function roleClass(task, role) {
  var t = TASKS.filter(function (x) { return x.name === task; })[0];
  var i = t ? t.entity_roles.indexOf(role) : -1;
  return 'r' + (i < 0 ? 3 : i % 4);
}
function table(head, rows) {
  var tb = el('table'), tr = el('tr');
  head.forEach(function (h) { tr.appendChild(el('th', h)); });
  tb.appendChild(tr);
  rows.forEach(function (r) { var row = el('tr'); r.forEach(function (c) { row.appendChild(el('td', c)); }); tb.appendChild(row); });
  return tb;
}
function resultTable(res) {
  var v = res.result;
  if (Array.isArray(v)) {
    if (v.length === 0) return el('p', 'nothing found', 'muted');
    if (typeof v[0] === 'string') return table(['#', 'entity'], v.map(function (s, i) { return [String(i + 1), s]; }));
    var keys = Object.keys(v[0]);
    return table(['#'].concat(keys), v.map(function (o, i) { return [String(i + 1)].concat(keys.map(function (k) { return String(o[k]); })); }));
  }
  if (v && typeof v === 'object') {
    return table(['field', 'value'], Object.keys(v).map(function (k) { return [k, Array.isArray(v[k]) ? v[k].join('; ') : String(v[k])]; }));
  }
  return el('p', String(v));
}
// spans are [start, end) in Unicode code points; overlapping spans keep the earlier (then longer) one
function highlighted(res) {
  var cps = Array.from(res.input);
  var marks = [];
  res.entities.forEach(function (e) { e.spans.forEach(function (s) { marks.push({ s: s[0], e: s[1], role: e.role }); }); });
  marks.sort(function (a, b) { return a.s - b.s || b.e - a.e; });
  var out = el('div', undefined, 'source'), at = 0;
  marks.forEach(function (m) {
    if (m.s < at) return;
    if (m.s > at) out.appendChild(document.createTextNode(cps.slice(at, m.s).join('')));
    var mk = el('mark', cps.slice(m.s, m.e).join(''), roleClass(res.task, m.role));
    mk.title = m.role;
    out.appendChild(mk);
    at = m.e;
  });
  if (at < cps.length) out.appendChild(document.createTextNode(cps.slice(at).join('')));
  return out;
}
function show(data) {
  var box = $('results');
  box.textContent = '';
  data.results.forEach(function (res) {
    var sec = el('section');
    sec.appendChild(el('h2', 'Result (' + res.task + ', finish: ' + res.finish_reason + (res.parsed ? '' : ', NOT fully parsed') + ')'));
    sec.appendChild(resultTable(res));
    sec.appendChild(el('h2', 'Source text'));
    var legend = el('div', undefined, 'legend');
    var roles = [];
    res.entities.forEach(function (e) { if (roles.indexOf(e.role) < 0) roles.push(e.role); });
    roles.forEach(function (r) { legend.appendChild(el('mark', r, roleClass(res.task, r))); });
    sec.appendChild(legend);
    sec.appendChild(highlighted(res));
    sec.appendChild(el('h2', 'Entities'));
    sec.appendChild(res.entities.length ? table(['role', 'text', 'spans'], res.entities.map(function (e) {
      return [e.role, e.text, e.spans.length ? e.spans.map(function (s) { return '[' + s[0] + ', ' + s[1] + ')'; }).join(' ') : 'not in the text'];
    })) : el('p', 'no entities', 'muted'));
    box.appendChild(sec);
  });
  var raw = el('section');
  raw.appendChild(el('h2', 'Raw JSON'));
  raw.appendChild(el('pre', JSON.stringify(data, null, 2)));
  box.appendChild(raw);
}
function run() {
  var text = $('text').value;
  if (!text.trim()) { $('status').textContent = 'enter some text first'; $('status').className = 'err'; return; }
  $('go').disabled = true;
  $('status').className = '';
  $('status').textContent = 'extracting...';
  var headers = { 'Content-Type': 'application/json' };
  var key = $('key') ? $('key').value.trim() : '';
  if (key) headers.Authorization = 'Bearer ' + key;
  var body = { task: $('task').value, text: text };
  if ($('model')) body.model = $('model').value;
  fetch('/v1/extract', { method: 'POST', headers: headers, body: JSON.stringify(body) })
    .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, j: j }; }); })
    .then(function (x) {
      var msg = x.j.error ? x.j.error.message : 'request failed';
      if (x.status === 401) throw new Error((key ? 'the API key was refused' : 'this server needs an API key') + ': enter it in the API key field (' + msg + ')');
      if (!x.ok) throw new Error(msg);
      $('status').textContent = 'done in ' + x.j.elapsed_ms + ' ms';
      show(x.j);
    })
    .catch(function (e) { $('status').textContent = String(e.message || e); $('status').className = 'err'; })
    .then(function () { $('go').disabled = false; });
}
$('go').addEventListener('click', run);
var q = new URLSearchParams(location.search);
if (q.get('task')) $('task').value = q.get('task');
if (q.get('text')) $('text').value = q.get('text');
describe();
if (q.get('run') === '1') run();
`;

/** The page; `nonce` must match the response's Content-Security-Policy script-src. */
export function pageHtml(
  tasks: TaskInfo[],
  nonce: string,
  info: {
    model: string;
    adapter: string | null;
    /** the names requests may use in "model" (a selector when more than one; the first is the default) */
    models?: string[];
    /** whether the /v1 routes need an API key (adds the key field) */
    apiKey?: boolean;
  },
): string {
  const title = `medlora: ${info.model}${info.adapter ? ` + ${info.adapter}` : ''}`;
  const models = info.models ?? [];
  const modelField =
    models.length > 1
      ? `<label for="model">Model</label><select id="model">${models.map((m) => `<option value="${escapeHtml(m)}">${escapeHtml(m)}</option>`).join('')}</select>\n`
      : '';
  const keyField = info.apiKey
    ? `<label for="key">API key</label><input id="key" type="password" autocomplete="off" spellcheck="false" placeholder="the key this server was started with"> <span class="muted">kept in this tab only (sessionStorage), sent as a Bearer token</span>\n`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<header><h1>medlora extraction</h1><small>model ${escapeHtml(info.model)}${info.adapter ? `, adapter ${escapeHtml(info.adapter)}` : ', no adapter'}</small></header>
<main>
${keyField}${modelField}<label for="task">Task</label><select id="task"></select> <span id="instruction" class="muted"></span>
<label for="text">Text</label><textarea id="text" placeholder="Paste a sentence or abstract..."></textarea>
<button id="go" type="button">Extract</button><span id="status"></span>
<div id="results"></div>
</main>
<script type="application/json" id="tasks">${scriptJson(tasks)}</script>
<script nonce="${nonce}">${SCRIPT}</script>
</body></html>
`;
}
