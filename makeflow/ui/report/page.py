"""The report as one HTML file: the data as JSON, the graph as SVG, styles and script
inline, and a Content-Security-Policy that forbids loading anything, so the page works
offline and a stray request shows up as an error in the browser's console.

No third-party library is inlined: the script below is makeflow's own (see docs/report.md).
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from makeflow.ui.report.data import ReportData

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:12px 20px}header h1{margin:0;font-size:20px}
main{padding:12px 20px}section{background:#fff;border:1px solid #ddd;border-radius:6px;
margin:0 0 14px;padding:10px 14px}h2{font-size:16px;margin:4px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #e0e0e0;border-radius:6px;
padding:6px 10px;min-width:90px}.card b{display:block;font-size:18px}
.ran{--c:#43a047}.restored{--c:#1e88e5}.failed{--c:#e53935}.skipped{--c:#9e9e9e}
.cut_off{--c:#8e24aa}.fresh{--c:#c8e6c9}.mixed{--c:#fb8c00}
.badge{background:var(--c);color:#fff;border-radius:3px;padding:0 5px;font-size:12px}
.fresh .badge,.badge.fresh{color:#225}
#graph{overflow:auto;max-height:520px;border:1px solid #eee}
#graph .node rect{fill:var(--c);stroke:#555;stroke-width:.6}
#graph .node text{font-size:11px;text-anchor:middle;fill:#111;pointer-events:none}
#graph .node{cursor:pointer}#graph .node.sel rect{stroke:#000;stroke-width:3}
#graph .edge{fill:none;stroke:#999;stroke-width:1}
#timeline-wrap{overflow:auto;max-height:420px;border:1px solid #eee}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #eee;padding:3px 6px;
text-align:left;vertical-align:top}th{cursor:pointer;background:#f5f5f5;user-select:none}
tr.step:hover{background:#f0f7ff;cursor:pointer}tr.sel{background:#e3f2fd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
#details th{width:160px}
#details pre{background:#263238;color:#eee;padding:8px;overflow:auto;max-height:320px}
.controls{display:flex;gap:8px;align-items:center;margin-bottom:6px;flex-wrap:wrap}
.muted{color:#777}.up{color:#2e7d32}.down{color:#c62828}code{font-size:12px}
"""

SCRIPT = r"""
(function(){
'use strict';
const D=JSON.parse(document.getElementById('report-data').textContent);
const steps=D.steps, byId=new Map(steps.map(s=>[s.id,s]));
const PAGE=100; let page=0, sortKey='start', sortDir=1, rows=steps.slice(), selected=null;
const $=id=>document.getElementById(id);
function fmtS(v){if(v===null||v===undefined)return '';return v<60?v.toFixed(2)+'s':
  Math.floor(v/60)+'m'+(v%60).toFixed(0).padStart(2,'0')+'s';}
function fmtB(v){if(v===null||v===undefined)return '';const u=['B','KB','MB','GB'];let i=0;
  while(v>=1024&&i<3){v/=1024;i++;}return v.toFixed(i?1:0)+' '+u[i];}
function el(tag,attrs,text){const e=document.createElement(tag);
  for(const k in attrs||{})e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;
  return e;}
function apply(){
  const st=$('f-status').value, q=$('f-text').value.toLowerCase();
  rows=steps.filter(s=>(!st||s.status===st)&&(!q||s.id.toLowerCase().includes(q)||
    s.rule.toLowerCase().includes(q)||(s.why||[]).join(' ').toLowerCase().includes(q)));
  rows.sort((a,b)=>{let x=a[sortKey],y=b[sortKey];
    if(sortKey==='why'){x=(x||[]).join();y=(y||[]).join();}
    if(x===null||x===undefined)return 1;if(y===null||y===undefined)return -1;
    return (x<y?-1:x>y?1:0)*sortDir;});
  page=Math.min(page,Math.max(0,Math.ceil(rows.length/PAGE)-1));render();}
function render(){
  const body=$('steps-body');body.textContent='';
  for(const s of rows.slice(page*PAGE,(page+1)*PAGE)){
    const tr=el('tr',{'class':'step'+(s.id===selected?' sel':''),'data-step':s.id});
    const st=el('td');st.appendChild(el('span',{'class':'badge '+s.status},s.status));
    tr.appendChild(el('td',{},s.id));tr.appendChild(st);
    tr.appendChild(el('td',{},(s.why||[]).join('; ')));
    tr.appendChild(el('td',{'class':'num'},fmtS(s.secs)));
    tr.appendChild(el('td',{'class':'num'},fmtS(s.cpu)));
    tr.appendChild(el('td',{'class':'num'},fmtB(s.rss)));
    tr.addEventListener('click',()=>select(s.id));body.appendChild(tr);}
  const pages=Math.max(1,Math.ceil(rows.length/PAGE));
  $('page-info').textContent='page '+(page+1)+' of '+pages+' ('+rows.length+' steps)';}
function select(id){
  selected=id;const s=byId.get(id);if(!s)return;
  document.querySelectorAll('tr.sel').forEach(r=>r.classList.remove('sel'));
  const tr=document.querySelector('tr[data-step="'+CSS.escape(id)+'"]');
  if(tr)tr.classList.add('sel');
  document.querySelectorAll('#graph .node.sel').forEach(n=>n.classList.remove('sel'));
  const key=D.collapsed?s.rule:s.id;
  const g=document.querySelector('#graph .node[data-key="'+CSS.escape(key)+'"]');
  if(g)g.classList.add('sel');
  const d=$('details');d.textContent='';
  d.appendChild(el('h2',{},id));
  const dl=el('table');
  const add=(k,v)=>{if(v===null||v===undefined||v==='')return;const tr=el('tr');
    tr.appendChild(el('th',{},k));tr.appendChild(el('td',{},String(v)));dl.appendChild(tr);};
  add('status',s.status);add('rule',s.rule);add('why',(s.why||[]).join('; '));
  add('command or code',s.cmd);add('params',JSON.stringify((D.rules[s.rule]||{}).params||{}));
  add('started',s.start===null?'':'+'+fmtS(s.start));add('took',fmtS(s.secs));
  add('cpu',fmtS(s.cpu));add('peak memory',fmtB(s.rss));add('exit status',s.exit);
  add('attempts',s.tries||'');add('worker',s.worker);add('error',s.error);add('log',s.log);
  d.appendChild(dl);
  if(typeof s.tail==='string'){d.appendChild(el('h3',{},'log tail'));
    d.appendChild(el('pre',{'id':'log-tail'},s.tail||'(the log is empty)'));}
  else if(s.status!=='fresh'){d.appendChild(el('p',{'class':'muted'},
    'log not in this report; run: makeflow logs '+s.id));}
  d.scrollIntoView({block:'nearest'});}
function timeline(){
  const c=$('timeline');if(!c)return;const timed=steps.filter(s=>s.start!==null&&s.secs!==null);
  if(!timed.length){c.remove();$('timeline-wrap').appendChild(el('p',{'class':'muted'},
    'no step ran in this build'));return;}
  const lanes=Math.max(...timed.map(s=>s.slot))+1, end=Math.max(D.seconds,
    ...timed.map(s=>s.start+s.secs)), W=Math.max(600,c.parentNode.clientWidth-20),
    LH=18, L=60, H=lanes*LH+24;
  c.width=W;c.height=H;const x=c.getContext('2d');x.font='11px sans-serif';
  const sx=v=>L+(W-L-10)*v/(end||1);
  const colors={ran:'#43a047',restored:'#1e88e5',failed:'#e53935',skipped:'#9e9e9e',
    cut_off:'#8e24aa',fresh:'#c8e6c9'};
  for(let i=0;i<lanes;i++){x.fillStyle=i%2?'#fafafa':'#f0f0f0';x.fillRect(L,i*LH,W-L,LH);
    x.fillStyle='#555';x.fillText('slot '+(i+1),4,i*LH+13);}
  for(const s of timed){x.fillStyle=colors[s.status]||'#888';
    x.fillRect(sx(s.start),s.slot*LH+2,Math.max(1,sx(s.start+s.secs)-sx(s.start)),LH-4);}
  x.fillStyle='#555';x.fillText('0s',L,H-6);const t=fmtS(end);
  x.fillText(t,W-10-x.measureText(t).width,H-6);
  c.addEventListener('click',ev=>{const r=c.getBoundingClientRect(),px=ev.clientX-r.left,
    lane=Math.floor((ev.clientY-r.top)/LH);const hit=timed.find(s=>s.slot===lane&&
    px>=sx(s.start)-1&&px<=sx(s.start+s.secs)+1);if(hit){showRow(hit.id);}});}
function showRow(id){const i=rows.findIndex(s=>s.id===id);
  if(i<0){$('f-status').value='';$('f-text').value='';apply();}
  const j=rows.findIndex(s=>s.id===id);if(j>=0){page=Math.floor(j/PAGE);render();}
  select(id);}
document.querySelectorAll('#graph .node').forEach(g=>g.addEventListener('click',()=>{
  const key=g.getAttribute('data-key');
  if(D.collapsed){$('f-text').value=key;$('f-status').value='';page=0;apply();
    const first=rows.find(s=>s.rule===key);if(first)select(first.id);}
  else showRow(key);}));
document.querySelectorAll('th[data-key]').forEach(th=>th.addEventListener('click',()=>{
  const k=th.getAttribute('data-key');sortDir=(sortKey===k)?-sortDir:1;sortKey=k;apply();}));
$('f-status').addEventListener('change',()=>{page=0;apply();});
$('f-text').addEventListener('input',()=>{page=0;apply();});
$('prev').addEventListener('click',()=>{if(page>0){page--;render();}});
$('next').addEventListener('click',()=>{if((page+1)*PAGE<rows.length){page++;render();}});
apply();timeline();
const firstFailed=steps.find(s=>s.status==='failed');
document.body.setAttribute('data-ready-ms',String(performance.now()));
document.body.setAttribute('data-ready','1');
if(firstFailed)$('failed-hint').textContent='first failed step: '+firstFailed.id;
})();
"""


def page(data: ReportData, graph_svg: str, graph_note: str, collapsed: bool,
         metrics_html: str) -> str:
    """The whole report page."""
    run = data.run
    payload = {"steps": data.steps, "rules": data.rules, "collapsed": collapsed,
               "seconds": data.summary.seconds}
    blob = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    blob = blob.replace("</", "<\\/")  # no "</script>" can end the data early
    title = f"makeflow run {run.id}"
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{html.escape(title)}: {html.escape(run.result)}</h1>",
        f"<div>{html.escape(run.command)}</div></header><main>",
        _summary(data),
        f"<section><h2>Graph</h2><p class='muted'>{html.escape(graph_note)}</p>",
        f"<div id='graph'>{graph_svg}</div></section>",
        "<section><h2>Timeline (one lane per job slot)</h2><div id='timeline-wrap'>",
        "<canvas id='timeline'></canvas></div></section>",
        _table(data), metrics_html,
        "<section id='details'><p class='muted'>Choose a step in the graph, the timeline or "
        "the table to see its reason, command, parameters and log.</p></section>",
        f"</main><script type='application/json' id='report-data'>{blob}</script>",
        f"<script>{SCRIPT}</script></body></html>",
    ])


def _summary(data: ReportData) -> str:
    run, s = data.run, data.summary
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
    counts = {k: 0 for k in ("ran", "restored", "failed", "skipped", "cut_off", "fresh")}
    for row in data.steps:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    cards = [("started", when), ("took", f"{s.seconds:.2f}s"),
             *((k.replace("_", " "), str(v)) for k, v in counts.items()),
             ("parallelism", f"{s.parallelism:.2f}"), ("most at once", str(s.peak)),
             ("job slots used", str(s.slots))]
    html_cards = "".join(
        f"<div class='card {k.replace(' ', '_')}'><span class='muted'>{html.escape(k)}</span>"
        f"<b id='count-{k.replace(' ', '_')}'>{html.escape(v)}</b></div>" for k, v in cards)
    chain = " → ".join(html.escape(c) for c in s.critical[:30])
    more = f" … ({len(s.critical)} steps)" if len(s.critical) > 30 else ""
    targets = html.escape(" ".join(run.targets) or "(the default rule)")
    return (f"<section><h2>Summary</h2><div class='cards'>{html_cards}</div>"
            f"<p>Targets: {targets}. <span id='failed-hint'></span></p>"
            f"<p>Critical path ({s.critical_seconds:.2f}s): {chain or 'none'}{more}</p>"
            f"<p class='muted'>Parallelism is the steps' total time ({s.busy:.2f}s) over the "
            f"build's wall time.</p></section>")


def _table(data: ReportData) -> str:
    options = "".join(f"<option value='{k}'>{k.replace('_', ' ')}</option>" for k in
                      ("ran", "restored", "failed", "skipped", "cut_off", "fresh"))
    head = "".join(f"<th data-key='{k}'>{label}</th>" for k, label in (
        ("id", "step"), ("status", "status"), ("why", "reason"), ("secs", "took"),
        ("cpu", "cpu"), ("rss", "peak memory")))
    return ("<section><h2>Steps</h2><div class='controls'>"
            "<select id='f-status'><option value=''>every status</option>"
            f"{options}</select><input id='f-text' placeholder='filter by step, rule, reason'>"
            "<button id='prev'>◀</button><span id='page-info'></span>"
            "<button id='next'>▶</button></div>"
            f"<table id='steps'><thead><tr>{head}</tr></thead><tbody id='steps-body'>"
            "</tbody></table></section>")


def metrics_section(current: dict[str, Any] | None, previous: dict[str, Any] | None) -> str:
    """The run's metrics with their change from the previous run that had them."""
    if not current:
        return ""
    rows = []
    for file, values in sorted(current.items()):
        before = (previous or {}).get(file, {})
        for key, value in sorted(values.items()):
            old = before.get(key)
            change = ""
            if _number(value) and _number(old) and value != old:
                delta = value - old
                change = f"<span class='{'up' if delta > 0 else 'down'}'>{delta:+.4g}</span>"
            rows.append(f"<tr><td>{html.escape(file)}</td><td>{html.escape(key)}</td>"
                        f"<td class='num'>{html.escape(str(value))}</td><td class='num'>"
                        f"{'' if old is None else html.escape(str(old))}</td>"
                        f"<td class='num'>{change}</td></tr>")
    return ("<section id='metrics'><h2>Metrics</h2><table><thead><tr><th>file</th><th>key"
            "</th><th>value</th><th>previous run</th><th>change</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></section>")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
