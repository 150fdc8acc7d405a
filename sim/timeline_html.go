package sim

import (
	"bufio"
	"errors"
	"fmt"
	"html"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/multiraft/multiraft/checker"
)

// The picture of a run: one self-contained HTML page (inline CSS and SVG,
// no script, nothing fetched), drawn by WriteHTML from what a Timeline
// recorded.
//
// The main plot has simulated time across and the keyspace down ("" at the
// top, +inf at the bottom; keys spaced by rank among the keys the run
// used). Each region is a band over its key range, cut where it splits,
// colored by the store leading it (grey hatched: no leader), its membership
// in the band's tooltip. Client operations are ticks at their key from call
// to return: grey when OK, brown when failed, magenta when ambiguous, red on
// a key the linearizability check failed (those keys are also ruled across
// the plot). Under it: the fault plan's effects (fault starts in red, ends
// in green), splits and membership changes, and a lane per node showing when
// it was down, cut off on the network, or on a failing disk. Below the
// picture, the fault actions by index (the numbers --faults-skip and
// --faults-at take) and the violations.

// Drawing geometry, in SVG pixels.
const (
	tlWidth      = 1540
	tlLeft       = 90  // key and row labels
	tlRight      = 110 // failing key labels
	tlPlotTop    = 8
	tlPlotHeight = 500
	tlRowHeight  = 20
	tlLaneHeight = 16
	tlLaneGap    = 4
)

// storeColors are the fills of regions led by stores 1, 2, ...
var storeColors = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7"}

func storeColor(id uint64) string {
	if id == 0 {
		return "url(#noleader)"
	}
	return storeColors[int(id-1)%len(storeColors)]
}

// WriteHTML writes the picture of the recorded run to out. The run must
// have ended (RunWith returned).
func (t *Timeline) WriteHTML(out io.Writer) error {
	if t == nil || !t.done {
		return errors.New("sim: timeline: the run has not ended")
	}
	b := bufio.NewWriter(out)
	p := &tlPainter{t: t, b: b}
	p.page()
	return b.Flush()
}

// tlPainter draws one page.
type tlPainter struct {
	t    *Timeline
	b    *bufio.Writer
	keys []string // every key and boundary, sorted: the keyspace axis
	fail map[string]bool
}

func (p *tlPainter) f(format string, args ...any) { fmt.Fprintf(p.b, format, args...) }

// esc escapes text for HTML and SVG.
func esc(s string) string { return html.EscapeString(s) }

// secs renders a virtual time in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func (p *tlPainter) x(d time.Duration) float64 {
	end := max(p.t.end, time.Millisecond)
	return tlLeft + float64(d)/float64(end)*float64(tlWidth-tlLeft-tlRight)
}

// yKey is the middle of key k's row on the keyspace axis.
func (p *tlPainter) yKey(k string) float64 {
	i := sort.SearchStrings(p.keys, k)
	return tlPlotTop + (float64(i)+0.5)/float64(len(p.keys))*tlPlotHeight
}

// yBound is the line above key k (a region boundary); "" as an end is
// +inf, the bottom.
func (p *tlPainter) yBound(k string, isEnd bool) float64 {
	if k == "" {
		if isEnd {
			return tlPlotTop + tlPlotHeight
		}
		return tlPlotTop
	}
	i := sort.SearchStrings(p.keys, k)
	return tlPlotTop + float64(i)/float64(len(p.keys))*tlPlotHeight
}

// axisKeys collects the keyspace axis: the workload's keys, every key an
// operation named and every region boundary.
func (p *tlPainter) axisKeys() {
	set := map[string]bool{}
	for _, k := range p.t.keys {
		set[k] = true
	}
	for _, op := range p.t.history {
		if op.Kind == checker.OpScan {
			set[op.ScanStart] = true
			if op.ScanEnd != "" {
				set[op.ScanEnd] = true
			}
		} else {
			set[op.Key] = true
		}
	}
	for _, rid := range p.t.order {
		for _, s := range p.t.regions[rid].segs {
			set[s.start] = true
			set[s.end] = true
		}
	}
	delete(set, "")
	for k := range set {
		p.keys = append(p.keys, k)
	}
	slices.Sort(p.keys)
	if len(p.keys) == 0 {
		p.keys = []string{""}
	}
	p.fail = map[string]bool{}
	for _, k := range p.t.failedKeys {
		p.fail[k] = true
	}
}

func (p *tlPainter) page() {
	p.axisKeys()
	rep := p.t.report
	verdict, color := "OK", "#2e7d32"
	if !rep.OK {
		verdict, color = "FAIL", "#c62828"
	}
	p.f(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>%s seed %d: %s</title>
<style>
body{font:13px/1.35 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:12px 16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px}
.verdict{color:#fff;padding:1px 8px;border-radius:3px;font-weight:600}
.facts span{margin-right:14px;white-space:nowrap}
.viol{background:#fdecea;border-left:4px solid #c62828;padding:4px 8px;margin:6px 0;white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;max-height:4.2em;overflow:hidden}
.legend{margin:4px 0 2px}
.legend span{margin-right:12px;white-space:nowrap}
.sw{display:inline-block;width:14px;height:10px;vertical-align:middle;margin-right:4px;border:1px solid #0002}
svg{display:block}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
table{border-collapse:collapse;margin:6px 0 14px}
td,th{border-bottom:1px solid #eee;padding:2px 8px;text-align:left;vertical-align:top;font-size:12px}
th{background:#f6f6f6}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
h2{font-size:15px;margin:14px 0 4px}
</style></head><body>
`, esc(rep.Scenario), rep.Seed, verdict)
	p.f(`<h1>%s &middot; seed %d &middot; <span class="verdict" style="background:%s">%s</span></h1>`+"\n",
		esc(rep.Scenario), rep.Seed, color, verdict)
	p.facts()
	if !rep.OK {
		p.f("<div class=\"viol\">%s</div>\n", esc(rep.Violation))
	}
	p.legend()
	p.svg()
	p.tables()
	p.f("</body></html>\n")
}

// facts is the line of numbers under the title.
func (p *tlPainter) facts() {
	rep := p.t.report
	p.f(`<div class="facts">`)
	p.f("<span>simulated %.1fs (workload %v)</span> ", rep.SimMs/1000, p.t.workload)
	p.f("<span>clients %d</span> ", p.t.clients)
	p.f("<span>ops %d: %d ok, %d failed, %d ambiguous</span> ", rep.OpsTotal, rep.OpsOK, rep.OpsFailed, rep.OpsAmbiguous)
	p.f("<span>regions %d&rarr;%d</span> ", rep.RegionsInitial, rep.RegionsFinal)
	p.f("<span>crashes %d</span> <span>moves %d</span>", rep.Crashes, rep.Moves)
	effective := 0
	for _, a := range p.t.actions {
		if a.Effective() {
			effective++
		}
	}
	p.f("<span>fault actions %d (%d did something)</span> ", len(p.t.actions), effective)
	if !p.t.edits.Empty() {
		e := p.t.edits.Normalized()
		var flags []string
		if len(e.Skip) > 0 {
			flags = append(flags, "--faults-skip "+e.SkipFlag())
		}
		if len(e.Retime) > 0 {
			flags = append(flags, "--faults-at "+e.RetimeFlag())
		}
		p.f("<span>edited plan: <code>%s</code></span> ", esc(strings.Join(flags, " ")))
	}
	p.f(`<span class="mono">trace %s</span> `, esc(rep.TraceHash))
	p.f("</div>\n")
	if rep.Mix != "" {
		p.f(`<div class="facts"><span>swarm mix: %s</span></div>`+"\n", esc(rep.Mix))
	}
}

func (p *tlPainter) legend() {
	p.f(`<div class="legend"><b>region leader:</b> `)
	for i := range p.t.lanes {
		if n := p.t.lanes[i].node; n != PDNode {
			p.f(`<span><i class="sw" style="background:%s;opacity:.55"></i>s%d</span> `, storeColor(n), n)
		}
	}
	p.f(`<span><i class="sw" style="background:repeating-linear-gradient(45deg,#ddd 0 3px,#fff 3px 6px)"></i>none</span> `)
	p.f(`&nbsp; <b>ops:</b> <span><i class="sw" style="background:#333"></i>ok</span> `)
	p.f(`<span><i class="sw" style="background:#a0522d"></i>failed</span> `)
	p.f(`<span><i class="sw" style="background:#d020c8"></i>ambiguous</span> `)
	p.f(`<span><i class="sw" style="background:#e00000"></i>on a non-linearizable key</span> `)
	p.f(`&nbsp; <b>nodes:</b> <span><i class="sw" style="background:#3a3a3a"></i>down</span> `)
	p.f(`<span><i class="sw" style="background:#ffa726"></i>network cut</span> `)
	p.f(`<span><i class="sw" style="background:repeating-linear-gradient(45deg,#8d6e00 0 3px,#f3d36b 3px 6px)"></i>failing disk</span> `)
	p.f(`<span><i class="sw" style="background:#e8e8e8"></i>not started</span> `)
	p.f("</div>\n")
}

func (p *tlPainter) svg() {
	lanesTop := tlPlotTop + tlPlotHeight + 22 + 2*tlRowHeight + 6
	height := lanesTop + len(p.t.lanes)*(tlLaneHeight+tlLaneGap) + 22
	p.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" fill="#333" font-size="11">`+"\n", tlWidth, height, tlWidth, height)
	p.f(`<defs><pattern id="noleader" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><rect width="3" height="6" fill="#ddd"/></pattern>`)
	p.f(`<pattern id="disk" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f3d36b"/><rect width="3" height="6" fill="#8d6e00"/></pattern></defs>` + "\n")
	p.bands()
	p.keyAxis()
	p.ops()
	p.failRules()
	p.phaseLines(float64(tlPlotTop), float64(height-22))
	y := tlPlotTop + tlPlotHeight
	p.timeAxis(float64(y))
	y += 22
	p.actionRow(float64(y))
	y += tlRowHeight
	p.clusterRow(float64(y))
	p.lanes(float64(lanesTop))
	p.timeAxis(float64(height - 22))
	p.f("</svg>\n")
}

// bands draws a rectangle per region segment, and region labels.
func (p *tlPainter) bands() {
	p.f(`<g stroke="#fff" stroke-width="1">`)
	for _, rid := range p.t.order {
		r := p.t.regions[rid]
		for _, s := range r.segs {
			x1, x2 := p.x(s.from), p.x(s.to)
			y1, y2 := p.yBound(s.start, false), p.yBound(s.end, true)
			leader := "none"
			if s.leader != 0 {
				leader = fmt.Sprintf("s%d", s.leader)
			}
			opacity := "0.45"
			if s.leader == 0 {
				opacity = "1"
			}
			p.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%s"><title>r%d %s %s–%s leader %s, peers %s</title></rect>`+"\n",
				x1, y1, max(x2-x1, 0.5), max(y2-y1, 0.5), storeColor(s.leader), opacity,
				r.id, esc(fmt.Sprintf("[%q, %s)", s.start, endName(s.end))), secs(s.from), secs(s.to), leader, esc(s.peers))
		}
	}
	p.f("</g>\n")
	// A label where a region's range begins, when there is room.
	for _, rid := range p.t.order {
		r := p.t.regions[rid]
		for i, s := range r.segs {
			if i > 0 && r.segs[i-1].start == s.start && r.segs[i-1].end == s.end {
				continue
			}
			y1, y2 := p.yBound(s.start, false), p.yBound(s.end, true)
			if y2-y1 < 13 {
				continue
			}
			p.f(`<text x="%.1f" y="%.1f" font-weight="600" fill="#222">r%d</text>`+"\n", p.x(s.from)+3, y1+12, r.id)
		}
	}
}

func endName(k string) string {
	if k == "" {
		return "+inf"
	}
	return fmt.Sprintf("%q", k)
}

// keyAxis labels the keyspace: the first key of each letter, and the
// boundaries of the initial regions.
func (p *tlPainter) keyAxis() {
	p.f(`<g>`)
	p.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, tlLeft, tlPlotTop, tlLeft, tlPlotTop+tlPlotHeight)
	p.f(`<text x="%d" y="%d" text-anchor="end">""</text>`, tlLeft-4, tlPlotTop+9)
	p.f(`<text x="%d" y="%d" text-anchor="end">+inf</text>`, tlLeft-4, tlPlotTop+tlPlotHeight)
	last := -100.0
	prev := byte(0)
	for _, k := range p.keys {
		if k == "" || k[0] == prev {
			continue
		}
		prev = k[0]
		y := p.yBound(k, false)
		if y-last < 12 || y < tlPlotTop+18 || y > tlPlotTop+tlPlotHeight-10 {
			continue
		}
		last = y
		p.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			tlLeft-3, y, tlLeft, y, tlLeft-5, y+4, esc(string(k[0])))
	}
	p.f(`<text transform="translate(12 %d) rotate(-90)" text-anchor="middle" font-weight="600">keyspace</text>`, tlPlotTop+tlPlotHeight/2)
	p.f("</g>\n")
}

// opClass sorts an operation into how it is drawn.
func (p *tlPainter) opClass(op checker.Op) string {
	if p.violating(op) {
		return "violating"
	}
	switch op.Outcome {
	case checker.OutcomeOK:
		return "ok"
	case checker.OutcomeFailed:
		return "failed"
	default:
		return "ambiguous"
	}
}

// violating reports whether op touched a key the check failed.
func (p *tlPainter) violating(op checker.Op) bool {
	if len(p.fail) == 0 {
		return false
	}
	if op.Kind != checker.OpScan {
		return p.fail[op.Key]
	}
	for _, k := range p.t.failedKeys {
		if k >= op.ScanStart && (op.ScanEnd == "" || k < op.ScanEnd) {
			return true
		}
	}
	return false
}

// ops draws the client operations: the OK ones as one path, the rest one
// by one with a tooltip.
func (p *tlPainter) ops() {
	var okPath strings.Builder
	type drawn struct {
		op    checker.Op
		class string
	}
	var special []drawn
	for _, op := range p.t.history {
		class := p.opClass(op)
		if class != "ok" {
			special = append(special, drawn{op, class})
			continue
		}
		x1, x2 := p.x(time.Duration(op.Call)), p.x(time.Duration(op.Return))
		y := p.yKey(p.opKey(op))
		fmt.Fprintf(&okPath, "M%.1f %.1fH%.1f", x1, y, max(x2, x1+1.5))
	}
	p.f(`<path d="%s" stroke="#333" stroke-opacity="0.45" stroke-width="1.6" fill="none"/>`+"\n", okPath.String())
	colors := map[string]string{"failed": "#a0522d", "ambiguous": "#d020c8", "violating": "#e00000"}
	for _, class := range []string{"failed", "ambiguous", "violating"} {
		width := "2.5"
		if class == "violating" {
			width = "4"
		}
		p.f(`<g stroke="%s" stroke-width="%s">`, colors[class], width)
		for _, d := range special {
			if d.class != class {
				continue
			}
			op := d.op
			x1, x2 := p.x(time.Duration(op.Call)), p.x(time.Duration(op.Return))
			if op.Outcome == checker.OutcomeAmbiguous {
				x2 = p.x(time.Duration(op.Call)) + 3 // an ambiguous op never returned
			}
			y := p.yKey(p.opKey(op))
			p.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>%s</title></line>`+"\n",
				x1, y, max(x2, x1+2.5), y, esc(describeOp(op)))
			if class == "violating" {
				p.f(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="#e00000" stroke="#fff" stroke-width="1"><title>%s</title></circle>`+"\n",
					x1, y, esc(describeOp(op)))
			}
		}
		p.f("</g>\n")
	}
}

// opKey is the key an operation is drawn at (a scan: its start).
func (p *tlPainter) opKey(op checker.Op) string {
	if op.Kind == checker.OpScan {
		if op.ScanStart == "" && len(p.keys) > 0 {
			return p.keys[0]
		}
		return op.ScanStart
	}
	return op.Key
}

// describeOp renders an operation for its tooltip.
func describeOp(op checker.Op) string {
	var what string
	switch op.Kind {
	case checker.OpGet:
		what = fmt.Sprintf("get %q", op.Key)
	case checker.OpPut:
		what = fmt.Sprintf("put %q=%q", op.Key, short(op.Value))
	case checker.OpDelete:
		what = fmt.Sprintf("delete %q", op.Key)
	case checker.OpCas:
		what = fmt.Sprintf("cas %q v%d -> %q", op.Key, op.ExpectedVersion, short(op.Value))
	case checker.OpScan:
		what = fmt.Sprintf("scan [%q, %s) limit %d", op.ScanStart, endName(op.ScanEnd), op.ScanLimit)
	}
	var outcome string
	switch op.Outcome {
	case checker.OutcomeOK:
		outcome = "ok"
		switch op.Kind {
		case checker.OpGet:
			if op.Found {
				outcome += fmt.Sprintf(" %q v%d", short(op.ResultValue), op.Version)
			} else {
				outcome += " not found"
			}
		case checker.OpCas:
			outcome += fmt.Sprintf(" swapped=%v v%d", op.CasSucceeded, op.Version)
		case checker.OpScan:
			outcome += fmt.Sprintf(" %d pairs", len(op.Pairs))
		default:
			outcome += fmt.Sprintf(" v%d", op.Version)
		}
	case checker.OutcomeFailed:
		outcome = "failed"
	default:
		outcome = "ambiguous"
	}
	return fmt.Sprintf("client %d %s -> %s [%s - %s]", op.ClientID, what, outcome,
		secs(time.Duration(op.Call)), secs(time.Duration(op.Return)))
}

// short cuts a value's padding.
func short(v string) string {
	if i := strings.Index(v, "-x"); i > 0 {
		return v[:i] + "…"
	}
	return v
}

// failRules rules the keys the check failed across the plot.
func (p *tlPainter) failRules() {
	for _, k := range p.t.failedKeys {
		y := p.yKey(k)
		p.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e00000" stroke-width="1" stroke-dasharray="4 3"/>`,
			tlLeft, y, tlWidth-tlRight, y)
		p.f(`<text x="%d" y="%.1f" fill="#e00000" font-weight="600">✗ %s</text>`+"\n", tlWidth-tlRight+4, y+4, esc(fmt.Sprintf("%q", k)))
	}
}

// phaseLines marks the end of the workload (everything healed, stores
// restarted) across the picture.
func (p *tlPainter) phaseLines(top, bottom float64) {
	if p.t.healAll > 0 {
		x := p.x(p.t.healAll)
		p.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2e7d32" stroke-width="1.5" stroke-dasharray="6 3"><title>workload over at %s: network and disks healed, every store restarted</title></line>`,
			x, top, x, bottom, secs(p.t.healAll))
		p.f(`<text x="%.1f" y="%.1f" fill="#2e7d32">heal all</text>`+"\n", x+3, top+tlPlotHeight-4)
	}
}

func (p *tlPainter) timeAxis(y float64) {
	step := 5 * time.Second
	if p.t.end > 150*time.Second {
		step = 10 * time.Second
	}
	if p.t.end < 20*time.Second {
		step = time.Second
	}
	p.f(`<g><line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999"/>`, tlLeft, y, tlWidth-tlRight, y)
	for d := time.Duration(0); d <= p.t.end; d += step {
		x := p.x(d)
		p.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/><text x="%.1f" y="%.1f" text-anchor="middle">%gs</text>`,
			x, y, x, y+4, x, y+15, d.Seconds())
	}
	p.f("</g>\n")
}

// actionRow marks every effect of a fault action: starts of faults red,
// ends green.
func (p *tlPainter) actionRow(y float64) {
	p.f(`<text x="%d" y="%.1f" text-anchor="end" font-weight="600">faults</text>`, tlLeft-5, y+13)
	lastLabel := -100.0
	for _, m := range p.t.marks {
		x := p.x(m.at)
		color := "#c62828"
		if m.ends {
			color = "#2e7d32"
		}
		p.f(`<path d="M%.1f %.1fl-4 -9h8z" fill="%s"><title>%s %s</title></path>`+"\n", x, y+17, color, secs(m.at), esc(m.text))
		// The action's index beside it, when there is room.
		if i := strings.IndexByte(m.text, ' '); strings.HasPrefix(m.text, "#") && i > 0 && x-lastLabel > 22 {
			p.f(`<text x="%.1f" y="%.1f" font-size="9" fill="%s">%s</text>`, x+4, y+8, color, esc(m.text[1:i]))
			lastLabel = x
		}
	}
}

// clusterRow marks splits (blue) and membership changes (purple).
func (p *tlPainter) clusterRow(y float64) {
	p.f(`<text x="%d" y="%.1f" text-anchor="end" font-weight="600">splits/moves</text>`, tlLeft-5, y+13)
	for _, e := range p.t.splits {
		x := p.x(e.at)
		p.f(`<rect x="%.1f" y="%.1f" width="3" height="12" fill="#1565c0"><title>%s %s</title></rect>`+"\n", x-1.5, y+4, secs(e.at), esc(e.text))
		// and where it cut the keyspace
		ky := p.yBound(e.key, false)
		p.f(`<path d="M%.1f %.1fl5 -4v8z" fill="#1565c0"><title>%s %s</title></path>`+"\n", x, ky, secs(e.at), esc(e.text))
	}
	for _, e := range p.t.confs {
		x := p.x(e.at)
		p.f(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="#7b1fa2"><title>%s %s</title></circle>`+"\n", x, y+10, secs(e.at), esc(e.text))
		// and on the region's band, near its top
		if seg, ok := p.segmentAt(e.region, e.at); ok {
			ky := p.yBound(seg.start, false) + 5
			p.f(`<path d="M%.1f %.1fl4 4l-4 4l-4 -4z" fill="#7b1fa2" stroke="#fff" stroke-width=".8"><title>%s %s</title></path>`+"\n", x, ky-4, secs(e.at), esc(e.text))
		}
	}
}

// segmentAt returns region's segment at time at.
func (p *tlPainter) segmentAt(region uint64, at time.Duration) (tlSeg, bool) {
	r := p.t.regions[region]
	if r == nil {
		return tlSeg{}, false
	}
	for _, s := range r.segs {
		if s.from <= at && at <= s.to {
			return s, true
		}
	}
	return tlSeg{}, false
}

// lanes draws each node's faults.
func (p *tlPainter) lanes(top float64) {
	fills := map[spanKind]string{spanDown: "#3a3a3a", spanNet: "#ffa726", spanDisk: "url(#disk)", spanNotStarted: "#e8e8e8"}
	for i, l := range p.t.lanes {
		y := top + float64(i*(tlLaneHeight+tlLaneGap))
		p.f(`<text x="%d" y="%.1f" text-anchor="end" font-weight="600">%s</text>`, tlLeft-5, y+12, nodeName(l.node))
		p.f(`<rect x="%d" y="%.1f" width="%d" height="%d" fill="#f7f7f7"/>`, tlLeft, y, tlWidth-tlLeft-tlRight, tlLaneHeight)
		// Network cuts under the rest: a store can be cut off and down.
		for _, kind := range []spanKind{spanNotStarted, spanNet, spanDisk, spanDown} {
			for _, s := range l.spans {
				if s.kind != kind {
					continue
				}
				x1, x2 := p.x(s.from), p.x(s.to)
				h, dy := float64(tlLaneHeight), 0.0
				if kind == spanDisk {
					h, dy = tlLaneHeight/2, tlLaneHeight/2
				}
				p.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s–%s: %s</title></rect>`+"\n",
					x1, y+dy, max(x2-x1, 1.5), h, fills[kind], nodeName(l.node), secs(s.from), secs(s.to), esc(s.label))
				if x2-x1 > 60 && kind != spanDisk {
					color := "#fff"
					if kind != spanDown {
						color = "#333"
					}
					p.f(`<text x="%.1f" y="%.1f" fill="%s" font-size="10">%s</text>`+"\n", x1+3, y+12, color, esc(clip(s.label, int((x2-x1)/6))))
				}
			}
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 2 {
		return ""
	}
	return s[:n-1] + "…"
}

// tables lists the fault actions that did something (or were edited) and
// the violations.
func (p *tlPainter) tables() {
	t := p.t
	if len(t.report.Violations) > 0 {
		p.f("<h2>Violations</h2>\n<table>")
		for _, v := range t.report.Violations {
			p.f(`<tr><td class="mono" style="white-space:pre-wrap">%s</td></tr>`, esc(v))
		}
		p.f("</table>\n")
		if len(t.failedKeys) > 0 {
			p.f("<p>Keys whose history is not linearizable: <code>%s</code></p>\n", esc(strings.Join(quoteAll(t.failedKeys), " ")))
		}
	}
	p.f("<h2>Fault actions</h2>\n<p>By index, as <code>--faults-skip</code> and <code>--faults-at</code> name them; actions that did nothing are left out.</p>\n")
	p.f("<table><tr><th>#</th><th>at</th><th>action</th><th>what it did</th></tr>\n")
	quiet := 0
	for _, a := range t.actions {
		if !a.Effective() && !a.Skipped && a.At == a.Planned {
			quiet++
			continue
		}
		what := strings.Join(a.Effects, "; ")
		switch {
		case a.Skipped:
			what = "skipped"
		case !a.Ran:
			what = "never ran"
		case what == "":
			what = "nothing"
		}
		at := secs(a.At)
		if a.At != a.Planned {
			at += " (planned " + secs(a.Planned) + ")"
		}
		p.f("<tr><td>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", a.Index, at, esc(a.Name), esc(what))
	}
	p.f("</table>\n<p>%d more actions did nothing.</p>\n", quiet)
}

func quoteAll(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = fmt.Sprintf("%q", k)
	}
	return out
}
