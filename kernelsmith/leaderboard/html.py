"""The leaderboard as ONE self-contained HTML page: inline CSS, inline plain JS (a click on a
header sorts its table; ``#sort=KEY`` or ``#sort=KEY:asc`` in the URL sorts on load), plots
as inline SVG. Nothing is fetched from the network."""

from __future__ import annotations

import json
import math
from html import escape

from kernelsmith.leaderboard import lang_table
from kernelsmith.leaderboard.build import Leaderboard
from kernelsmith.leaderboard.table import HEADER, columns, fnum, fx, row_values
from kernelsmith.leaderboard.plots import svg_fastp, svg_speedups

CSS = """
body{font-family:-apple-system,Segoe UI,DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
p.defs{font-size:12px;color:#444;max-width:1200px} .meta{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:11px;margin:6px 0 10px}
th,td{border:1px solid #ccc;padding:3px 4px;text-align:right;white-space:nowrap}
td.t,th.t{text-align:left} th{background:#f0f3f7;cursor:pointer;user-select:none;white-space:normal;max-width:80px;vertical-align:bottom}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafafa} tr.replay td{color:#666;font-style:italic}
.plots{display:flex;flex-wrap:wrap;gap:12px} .plots svg{border:1px solid #eee;background:#fff}
ul.tasks{font-size:11px;columns:3;color:#444} code{font-size:11px} ul.notes li{font-size:12px}
"""

JS = r"""
(function(){
  function val(td){var v=td.getAttribute('data-sort');if(v===null||v==='')return null;
    var n=parseFloat(v);return isNaN(n)?v.toLowerCase():n;}
  function sortTable(table,key,dir){
    var ths=table.tHead.rows[0].cells,col=-1;
    for(var i=0;i<ths.length;i++){ths[i].classList.remove('sorted-asc','sorted-desc');
      if(ths[i].getAttribute('data-key')===key)col=i;}
    if(col<0)return false;
    var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=val(a.cells[col]),y=val(b.cells[col]);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      var c=(x<y)?-1:(x>y)?1:0;return dir==='asc'?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    ths[col].classList.add(dir==='asc'?'sorted-asc':'sorted-desc');
    table.setAttribute('data-sorted',key+':'+dir);return true;}
  window.ksSort=sortTable;
  var tables=document.querySelectorAll('table.sortable');
  tables.forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
      th.addEventListener('click',function(){
        var cur=table.getAttribute('data-sorted')||'',key=th.getAttribute('data-key');
        var dir=(cur===key+':desc')?'asc':'desc';sortTable(table,key,dir);});});});
  var m=/[#&]sort=([^&:]+)(?::(asc|desc))?/.exec(location.hash||'');
  if(m){tables.forEach(function(t){sortTable(t,decodeURIComponent(m[1]),m[2]||'desc');});}
  document.body.setAttribute('data-js','ready');
})();
"""


def _sort_attr(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return "" if isinstance(v, float) and not math.isfinite(v) else repr(float(v))
    return escape(str(v), quote=True)


def render_html(lb: Leaderboard) -> str:
    cols = columns()
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>kernelsmith leaderboard</title>",
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "script-src 'unsafe-inline'; img-src data:\">",
           f"<style>{CSS}</style></head><body>",
           "<h1>kernelsmith leaderboard</h1>",
           f"<div class=\"meta\">Generated {escape(lb.generated_at)} from {escape(lb.db)}</div>",
           f"<p class=\"defs\">{escape(HEADER)} Click a column header to sort.</p>"]
    if not lb.groups:
        out.append("<p>No runs with tasks found.</p>")
    for g in lb.groups:
        out.append(f"<section class=\"group\" id=\"set-{escape(g.name)}\"><h2>{escape(g.title)}</h2>")
        out.append(f"<table class=\"sortable leaderboard\" id=\"table-{escape(g.name)}\"><thead><tr>")
        for title, key, _, fmt in cols:
            cls = "t" if fmt is str and key not in ("rank", "tasks") else ""
            out.append(f"<th class=\"{cls}\" data-key=\"{escape(key)}\">{escape(title)}</th>")
        out.append("</tr></thead><tbody>")
        for r in g.runs:
            out.append(f"<tr class=\"run{' replay' if r.replayed else ''}\" data-run=\"{escape(r.run_id)}\">")
            for (key, text, v), (_, _, _, fmt) in zip(row_values(r), cols):
                cls = "t" if fmt is str and key not in ("rank", "tasks") else ""
                out.append(f"<td class=\"{cls}\" data-key=\"{escape(key)}\" data-sort=\"{_sort_attr(v)}\">"
                           f"{escape(text)}</td>")
            out.append("</tr>")
        out.append("</tbody></table>")
        # per level
        out.append("<details open><summary>Per level</summary><table class=\"sortable levels\"><thead><tr>")
        lcols = [("run", "run"), ("level", "level"), ("tasks", "tasks"), ("fast_0", "fast_0"), ("fast_1", "fast_1"),
                 ("fast_1.5", "fast_1.5"), ("fast_2", "fast_2"), ("geomean vs eager (correct)", "speedup"),
                 ("geomean vs eager (all, fail=1x)", "speedup_all")]
        out += [f"<th class=\"{'t' if k == 'run' else ''}\" data-key=\"{k}\">{escape(t)}</th>" for t, k in lcols]
        out.append("</tr></thead><tbody>")
        for r in g.runs:
            for lvl, sm in r.levels.items():
                vals = [(r.run_id, r.run_id), (lvl, lvl), (str(sm.tasks), sm.tasks)]
                vals += [(fnum(sm.fast[k], pct=True), sm.fast[k]) for k in ("fast_0", "fast_1", "fast_1.5", "fast_2")]
                vals += [(fx(sm.geomean_eager_correct), sm.geomean_eager_correct),
                         (fx(sm.geomean_eager_all), sm.geomean_eager_all)]
                out.append("<tr>" + "".join(f"<td class=\"{'t' if k == 'run' else ''}\" data-key=\"{k}\" data-sort=\"{_sort_attr(v)}\">{escape(t)}</td>"
                                            for (t, v), (_, k) in zip(vals, lcols)) + "</tr>")
        out.append("</tbody></table></details>")
        out.append("<div class=\"plots\">")
        out.append(svg_fastp(g.runs, f"fast_p curve: reference set {g.name}"))
        out.append(svg_speedups(g.runs, f"winning speedups over eager: reference set {g.name}"))
        out.append("</div>")
        out.append(f"<details><summary>{len(g.tasks)} tasks of reference set {escape(g.name)}</summary>"
                   "<ul class=\"tasks\">")
        out += [f"<li><code>{escape(t['hash'][:12])}</code> {escape(t['name'])}"
                + (f" (L{t['level']})" if t["level"] is not None else "") + "</li>" for t in g.tasks]
        out.append("</ul></details></section>")
    if lang_table.any_samples(lb):
        out += lang_table.render_html(lb)
    if lb.notes:
        out.append("<h2>Notes</h2><ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in lb.notes)
                   + "</ul>")
    data = json.dumps(lb.to_dict()).replace("</", "<\\/")
    out.append(f"<script type=\"application/json\" id=\"leaderboard-data\">{data}</script>")
    out.append(f"<script>{JS}</script></body></html>")
    return "\n".join(out)
