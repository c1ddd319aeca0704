// SPDX-License-Identifier: GPL-3.0-only

package flame

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// node is one frame in the call tree.
type node struct {
	name     string
	value    int64
	children map[string]*node
	order    []*node
}

func (n *node) child(name string) *node {
	if c, ok := n.children[name]; ok {
		return c
	}
	c := &node{name: name, children: map[string]*node{}}
	n.children[name] = c
	n.order = append(n.order, c)
	return c
}

// Tree merges the samples into a call tree rooted at "all".
func tree(p *Profile) *node {
	root := &node{name: "all", children: map[string]*node{}}
	for _, s := range p.Samples {
		root.value += s.Value
		n := root
		for _, f := range s.Stack {
			n = n.child(f)
			n.value += s.Value
		}
	}
	return root
}

// encode turns the tree into [nameIndex, value, child, child, ...] arrays
// with a shared name table, children sorted by name (flame graph order).
func encode(n *node, names map[string]int, table *[]string) []any {
	idx, ok := names[n.name]
	if !ok {
		idx = len(*table)
		names[n.name] = idx
		*table = append(*table, n.name)
	}
	out := []any{idx, n.value}
	kids := append([]*node(nil), n.order...)
	sort.Slice(kids, func(i, j int) bool { return kids[i].name < kids[j].name })
	for _, c := range kids {
		out = append(out, encode(c, names, table))
	}
	return out
}

// FuncStat is one function's self (flat) and total (cumulative) value.
type FuncStat struct {
	Name      string
	Flat, Cum int64
	FlatPct   float64
	CumPct    float64
}

// TopFuncs returns the n functions with the most self time.
func TopFuncs(p *Profile, n int) []FuncStat {
	flat, cum := map[string]int64{}, map[string]int64{}
	for _, s := range p.Samples {
		if len(s.Stack) == 0 {
			continue
		}
		flat[s.Stack[len(s.Stack)-1]] += s.Value
		seen := map[string]bool{}
		for _, f := range s.Stack {
			if !seen[f] {
				seen[f] = true
				cum[f] += s.Value
			}
		}
	}
	total := float64(max(p.Total(), 1))
	var out []FuncStat
	for name, c := range cum {
		out = append(out, FuncStat{Name: name, Flat: flat[name], Cum: c,
			FlatPct: 100 * float64(flat[name]) / total, CumPct: 100 * float64(c) / total})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Flat != out[j].Flat {
			return out[i].Flat > out[j].Flat
		}
		return out[i].Name < out[j].Name
	})
	return out[:min(n, len(out))]
}

// HTML renders the profile as one self-contained page: an interactive flame
// graph (root on top, like `go tool pprof -http`'s flame view: click a frame
// to zoom, search to highlight) and a table of the top functions.
func HTML(p *Profile, title string) []byte {
	names := map[string]int{}
	var table []string
	data, _ := json.Marshal(map[string]any{
		"tree":  encode(tree(p), names, &table),
		"names": table,
		"unit":  p.Unit,
	})
	var top []FuncStat
	for _, f := range TopFuncs(p, 40) {
		f.Name = shortName(f.Name)
		top = append(top, f)
	}
	var b bytes.Buffer
	err := page.Execute(&b, map[string]any{
		"Title":   title,
		"Total":   formatValue(p.Total(), p.Unit),
		"Samples": len(p.Samples),
		"Data":    template.JS(data),
		"Top":     top,
		"Unit":    p.Unit,
	})
	if err != nil {
		return []byte("flame graph: " + err.Error())
	}
	return b.Bytes()
}

func formatValue(v int64, unit string) string {
	if unit == "nanoseconds" {
		return fmt.Sprintf("%.2fs CPU", float64(v)/1e9)
	}
	return fmt.Sprintf("%d %s", v, strings.TrimSpace(unit))
}

var page = template.Must(template.New("flame").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
#fg{position:relative;width:100%;overflow:hidden;border:1px solid #ddd}
.f{position:absolute;height:17px;line-height:17px;font:11px monospace;overflow:hidden;white-space:nowrap;
   box-sizing:border-box;border-right:1px solid #fff;border-bottom:1px solid #fff;padding-left:3px;cursor:pointer}
.f.m{background:#e040fb!important;color:#fff}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:4px 6px;font:12px monospace;display:none;max-width:70%}
table{border-collapse:collapse;margin-top:16px}td,th{padding:2px 8px;text-align:right;font:12px monospace}td:last-child,th:last-child{text-align:left}
tr:nth-child(even){background:#f4f4f4}
</style></head><body>
<h3>{{.Title}}</h3>
<p>{{.Total}} in {{.Samples}} stacks. Each box is a function; its width is the share of CPU time spent in it
<em>and everything it called</em>; the boxes under it are its callees (root on top). Click a box to zoom in,
click "all" to zoom out. Wide boxes with nothing under them are where the time is actually spent.</p>
<p><input id="q" placeholder="highlight functions matching (regexp)" size="40"> <span id="qm"></span>
<button id="reset">reset zoom</button></p>
<div id="fg"></div><div id="tip"></div>
<h4>Top functions by self time</h4>
<table><tr><th>self</th><th>total</th><th>function</th></tr>
{{range .Top}}<tr><td>{{pct .FlatPct}}</td><td>{{pct .CumPct}}</td><td>{{.Name}}</td></tr>
{{end}}</table>
<script>
const D = {{.Data}};
const H = 18, fg = document.getElementById('fg'), tip = document.getElementById('tip');
const total = D.tree[1];
let zoom = D.tree, query = null;
function hue(name) {
  let h = 0; const pkg = name.replace(/\.[^.]*$/, '');
  for (const c of pkg) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return name.startsWith('runtime.') ? 'hsl(200,45%,' + (70 + h % 12) + '%)'
       : name.startsWith('syscall.') || name.startsWith('internal/runtime/syscall') ? 'hsl(0,55%,' + (68 + h % 10) + '%)'
       : 'hsl(' + (20 + h % 40) + ',80%,' + (60 + h % 12) + '%)';
}
function pathTo(n, target, path) {
  if (n === target) return path.concat([n]);
  for (let i = 2; i < n.length; i++) { const p = pathTo(n[i], target, path.concat([n])); if (p) return p; }
  return null;
}
function render() {
  fg.innerHTML = '';
  const W = fg.clientWidth, frag = document.createDocumentFragment();
  let maxDepth = 0, matched = 0;
  // Ancestors of the zoomed frame span the full width above it.
  const anc = pathTo(D.tree, zoom, []) || [zoom];
  anc.slice(0, -1).forEach((n, d) => box(n, d, 0, W, true));
  function box(n, depth, x, w, ancestor) {
    const name = D.names[n[0]], el = document.createElement('div');
    el.className = 'f'; el.style.left = x + 'px'; el.style.top = depth * H + 'px'; el.style.width = w + 'px';
    el.style.background = ancestor ? '#ccc' : hue(name);
    if (query && query.test(name)) { el.classList.add('m'); matched += n[1]; }
    if (w > 30) el.textContent = name;
    el.onclick = () => { zoom = n; render(); };
    el.onmousemove = e => { tip.style.display = 'block'; tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
      tip.textContent = name + ' — ' + (100 * n[1] / total).toFixed(2) + '% of all, ' + (100 * n[1] / zoom[1]).toFixed(2) + '% of view'; };
    el.onmouseout = () => { tip.style.display = 'none'; };
    frag.appendChild(el); maxDepth = Math.max(maxDepth, depth);
  }
  function walk(n, depth, x, w) {
    box(n, depth, x, w, false);
    let cx = x;
    for (let i = 2; i < n.length; i++) {
      const cw = w * n[i][1] / n[1];
      if (cw >= 0.5) walk(n[i], depth + 1, cx, cw);
      cx += cw;
    }
  }
  walk(zoom, anc.length - 1, 0, W);
  fg.style.height = (maxDepth + 1) * H + 'px';
  fg.appendChild(frag);
  document.getElementById('qm').textContent = query ? 'matched ' + (100 * matched / total).toFixed(1) + '% (nested matches count twice)' : '';
}
document.getElementById('q').oninput = e => { try { query = e.target.value ? new RegExp(e.target.value) : null; } catch (_) { query = null; } render(); };
document.getElementById('reset').onclick = () => { zoom = D.tree; render(); };
window.onresize = render;
render();
</script></body></html>
`))

// Folded renders the profile as folded stacks ("root;child;leaf value" per
// line, merged and sorted), the input format of flamegraph.pl and speedscope.
func Folded(p *Profile) []byte {
	sum := map[string]int64{}
	for _, s := range p.Samples {
		sum[strings.Join(s.Stack, ";")] += s.Value
	}
	keys := make([]string, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d\n", k, sum[k])
	}
	return b.Bytes()
}
