// Package chart draws the console's charts as SVG on the server: no script,
// no library fetched by the browser. Every chart carries its title and an
// aria-label with its figures, so it reads without being seen.
package chart

import (
	"fmt"
	"html"
	"strconv"
	"strings"
)

// Series is one set of bars, drawn in one colour.
type Series struct {
	Name   string
	Colour string // an SVG colour, e.g. #059669
	Values []float64
}

// Bars is a bar chart: for each label, one bar per series side by side.
type Bars struct {
	Title  string
	Labels []string // one per group of bars (a day, a code, a flow)
	Series []Series
	// Unit follows each figure in the aria-label ("", " s").
	Unit string
}

const (
	width, height        = 640, 220
	left, bottom, topPad = 40, 28, 24
)

// SVG renders the chart. Text is escaped; the markup is safe to embed.
func (b Bars) SVG() string {
	var sb strings.Builder
	peak := 0.0
	for _, s := range b.Series {
		for _, v := range s.Values {
			peak = max(peak, v)
		}
	}
	if peak == 0 {
		peak = 1
	}
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" class="w-full h-auto">`,
		width, height, esc(b.Title+": "+b.describe()))
	fmt.Fprintf(&sb, `<title>%s</title>`, esc(b.Title))
	plotW, plotH := float64(width-left-8), float64(height-bottom-topPad)
	// Axis and the peak's figure.
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#cbd5e1"/>`, left, height-bottom, width-8, height-bottom)
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#64748b">%s</text>`, left-4, topPad+4, esc(num(peak)))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#64748b">0</text>`, left-4, height-bottom)
	n := len(b.Labels)
	if n == 0 {
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="13" text-anchor="middle" fill="#64748b">Nothing in this range</text></svg>`, width/2, height/2)
		return sb.String()
	}
	group := plotW / float64(n)
	bar := group * 0.8 / float64(max(len(b.Series), 1))
	every := max(1, n/12) // at most a dozen labels under the axis
	for i, label := range b.Labels {
		x0 := float64(left) + group*float64(i) + group*0.1
		for j, s := range b.Series {
			v := 0.0
			if i < len(s.Values) {
				v = s.Values[i]
			}
			h := plotH * v / peak
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				x0+bar*float64(j), float64(height-bottom)-h, max(bar-1, 1), h, esc(s.Colour), esc(s.Name+", "+label+": "+num(v)+b.Unit))
		}
		if i%every == 0 {
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#475569">%s</text>`,
				x0+group*0.4, height-bottom+14, esc(label))
		}
	}
	// The legend.
	for j, s := range b.Series {
		x := left + j*140
		fmt.Fprintf(&sb, `<rect x="%d" y="4" width="10" height="10" fill="%s"/><text x="%d" y="13" font-size="11" fill="#334155">%s</text>`,
			x, esc(s.Colour), x+14, esc(s.Name))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// describe lists the figures: "In: 1 Dec 4, 2 Dec 0; Out: …".
func (b Bars) describe() string {
	var parts []string
	for _, s := range b.Series {
		var vs []string
		for i, label := range b.Labels {
			if i < len(s.Values) {
				vs = append(vs, label+" "+num(s.Values[i])+b.Unit)
			}
		}
		parts = append(parts, s.Name+": "+strings.Join(vs, ", "))
	}
	if len(parts) == 0 || len(b.Labels) == 0 {
		return "nothing in this range"
	}
	return strings.Join(parts, "; ")
}

// num prints a figure without needless decimals.
func num(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func esc(s string) string { return html.EscapeString(s) }
