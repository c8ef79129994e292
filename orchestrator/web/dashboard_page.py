"""The dashboard's page: one self-contained HTML document, plain JS and inline SVG, no CDN (docs/dashboard.md).

It polls `api/state` (relative, so it works behind any prefix) once a second and redraws.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>finnsplit dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0} .pill{padding:2px 10px;border-radius:10px;font-weight:600}
.running{background:#2e9e5b;color:#fff}.degraded{background:#c0392b;color:#fff}
.reconciling,.starting,.waiting{background:#e6a23c;color:#fff}.stale{background:#888;color:#fff}
main{display:grid;grid-template-columns:1fr 1fr;gap:14px;padding:14px}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/3} h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.bottleneck{background:#fff3d6}
.dead{color:#c0392b;font-weight:600}.ok{color:#2e9e5b} .muted{color:#888} ul{margin:0;padding-left:18px}
.bar{display:inline-block;height:8px;background:#4a7bd0;vertical-align:middle;margin-right:4px}
</style></head><body>
<header><h1>finnsplit</h1><span id="state" class="pill starting">connecting</span>
<span>chain <b id="chain">-</b></span><span>bundle <b id="bundle">-</b></span>
<span>bottleneck <b id="bottleneck">-</b></span><span class="muted">sample <span id="seq">0</span>,
updated <span id="updated">never</span></span></header>
<main>
<section class="wide"><h2>fps per stage</h2><svg id="chart" width="100%" height="220" viewBox="0 0 1000 220"
 preserveAspectRatio="none"></svg><div id="legend"></div></section>
<section><h2>stages</h2><table id="stages"><thead><tr><th>stage</th><th>board</th><th>fps</th>
<th>compute ms</th><th>wait ms</th><th>send ms</th><th>queue in</th><th>queue out</th><th>errors</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>boards</h2><table id="boards"><thead><tr><th>board</th><th>type</th><th>address</th><th>state</th>
<th>stage</th><th>heard</th></tr></thead><tbody></tbody></table></section>
<section><h2>failovers</h2><ul id="failovers"><li class="muted">none</li></ul></section>
<section><h2>last errors</h2><ul id="errors"><li class="muted">none</li></ul></section>
<section class="wide" id="ingress-box" hidden><h2>ingress</h2><div id="ingress"></div></section>
</main>
<script>
"use strict";
const COLORS = ["#4a7bd0","#e67e22","#2e9e5b","#8e44ad","#c0392b","#16a085","#d35400","#2c3e50"];
const seen = [];  // the server samples this page has drawn (the test reads it: the page updates)
function el(tag, text, cls){const e=document.createElement(tag); if(text!==undefined) e.textContent=text;
  if(cls) e.className=cls; return e;}
function row(cells, cls){const tr=el("tr",undefined,cls); for(const c of cells){const td=el("td");
  if(typeof c==="number"){td.className="num"; td.textContent=c.toFixed(c<10?2:1);} else td.textContent=c??"-";
  tr.appendChild(td);} return tr;}
function fill(id, rows){const body=document.querySelector("#"+id+" tbody"); body.replaceChildren(...rows);}
function list(id, items){const ul=document.getElementById(id);
  ul.replaceChildren(...(items.length?items:[el("li","none","muted")]));}
function when(t){return t?new Date(t*1000).toLocaleTimeString():"";}
function chart(history, stages){
  const svg=document.getElementById("chart"), W=1000, H=220, pad=30, ns="http://www.w3.org/2000/svg";
  svg.replaceChildren();
  let top=1; for(const h of history) for(const v of Object.values(h.fps)) top=Math.max(top,v);
  top*=1.1;
  const t0=history.length?history[0].t:0, t1=history.length?history[history.length-1].t:1, span=Math.max(t1-t0,1);
  for(let k=0;k<=4;k++){const y=H-pad-(H-2*pad)*k/4, line=document.createElementNS(ns,"line");
    line.setAttribute("x1",pad); line.setAttribute("x2",W); line.setAttribute("y1",y); line.setAttribute("y2",y);
    line.setAttribute("stroke","#eee"); svg.appendChild(line);
    const label=document.createElementNS(ns,"text"); label.setAttribute("x",0); label.setAttribute("y",y+4);
    label.setAttribute("font-size","11"); label.textContent=(top*k/4).toFixed(0); svg.appendChild(label);}
  const legend=[];
  stages.forEach((s,i)=>{
    const pts=history.filter(h=>s.stage in h.fps).map(h=>
      `${pad+(W-pad)*(h.t-t0)/span},${H-pad-(H-2*pad)*h.fps[s.stage]/top}`);
    const color=COLORS[i%COLORS.length], line=document.createElementNS(ns,"polyline");
    line.setAttribute("points",pts.join(" ")); line.setAttribute("fill","none"); line.setAttribute("stroke",color);
    line.setAttribute("stroke-width","2"); line.setAttribute("vector-effect","non-scaling-stroke");
    line.setAttribute("class","series"); line.dataset.stage=s.stage; svg.appendChild(line);
    const item=el("span",`stage ${s.stage} (${s.board}) `); const sw=el("span","","bar");
    sw.style.background=color; sw.style.width="14px"; item.prepend(sw); legend.push(item);});
  document.getElementById("legend").replaceChildren(...legend);
}
function draw(s){
  seen.push(s.seq); document.body.dataset.samples=seen.join(",");
  const state=document.getElementById("state"); state.textContent=s.state; state.className="pill "+s.state;
  document.getElementById("chain").textContent=s.chain??"-";
  document.getElementById("bundle").textContent=s.bundle??"-";
  const slow=(s.stages||[]).find(x=>x.stage===s.bottleneck);
  document.getElementById("bottleneck").textContent=slow?
    `stage ${slow.stage} on ${slow.board} (${slow.compute_ms.toFixed(2)} ms/frame)`:"-";
  document.getElementById("seq").textContent=s.seq;
  document.getElementById("updated").textContent=when(s.t);
  fill("stages",(s.stages||[]).map(x=>row([x.stage,x.board,x.fps,x.compute_ms,x.wait_ms,x.send_ms,
    `${x.queue_in}/${x.queue_in_capacity}`,`${x.queue_out}/${x.queue_out_capacity}`,String(x.errors)],
    x.stage===s.bottleneck?"bottleneck":"")));
  fill("boards",(s.boards||[]).map(b=>{const r=row([b.name,b.type,b.address,b.state+(b.error?": "+b.error:""),
    b.stage,b.heard_s===null?"never":b.heard_s+" s ago"]); r.dataset.board=b.name;
    r.children[3].className=b.alive?"ok":"dead"; return r;}));
  list("failovers",(s.failovers||[]).slice().reverse().map(f=>
    el("li",`${when(f.t)} stage ${f.stage}: ${f.from} \\u2192 ${f.to}`)));
  list("errors",(s.errors||[]).map(e=>el("li",`${when(e.t)} [${e.source}] ${e.text}`)));
  chart(s.history||[], s.stages||[]);
  if(s.ingress){const box=document.getElementById("ingress-box"); box.hidden=false; const i=s.ingress;
    document.getElementById("ingress").textContent=`${i.address}: ${i.requests} requests, ${i.frames} frames, `+
      `${i.refused} refused, ${i.pending} frames waiting, ${i.failed} failed`;}
}
async function poll(){
  try{const r=await fetch("api/state",{cache:"no-store"}); if(!r.ok) throw new Error(r.status); draw(await r.json());}
  catch(e){const state=document.getElementById("state"); state.textContent="no answer ("+e.message+")";
    state.className="pill stale";}
  setTimeout(poll,1000);
}
poll();
</script></body></html>
"""
