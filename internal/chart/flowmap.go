package chart

import (
	"fmt"
	"sort"
	"strings"
)

// MapNode is one node of a flow map.
type MapNode struct {
	ID, Kind string
	Edges    []MapEdge
	// Reached and Left are the funnel's counts (shown when Counted).
	Reached, Left int64
}

// MapEdge is one way out of a node, labelled with its condition, answer,
// intent or "next".
type MapEdge struct{ When, To string }

// FlowMap is a flow drawn as a graph: nodes in layers by their distance
// from the start (those the start does not reach in a last layer), edges
// labelled.
type FlowMap struct {
	Title   string
	Start   string
	Nodes   []MapNode
	Current string // the node to highlight ("" for none)
	Counted bool   // show each node's funnel counts
}

const (
	boxW, boxH = 168, 50
	gapX, gapY = 24, 70
	margin     = 16
	backRoom   = 160
)

type placed struct {
	MapNode
	x, y  float64
	layer int
}

// layers places each node by its breadth-first distance from the start.
func (m FlowMap) layers() (map[string]*placed, [][]*placed) {
	byID := map[string]*placed{}
	for _, n := range m.Nodes {
		byID[n.ID] = &placed{MapNode: n, layer: -1}
	}
	var rows [][]*placed
	if s := byID[m.Start]; s != nil {
		s.layer = 0
		queue := []*placed{s}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for len(rows) <= p.layer {
				rows = append(rows, nil)
			}
			rows[p.layer] = append(rows[p.layer], p)
			for _, e := range p.Edges {
				if q := byID[e.To]; q != nil && q.layer < 0 {
					q.layer = p.layer + 1
					queue = append(queue, q)
				}
			}
		}
	}
	var rest []*placed
	for _, p := range byID {
		if p.layer < 0 {
			p.layer = len(rows)
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		sort.Slice(rest, func(i, j int) bool { return rest[i].ID < rest[j].ID })
		rows = append(rows, rest)
	}
	return byID, rows
}

// SVG renders the map. Text is escaped; the markup is safe to embed.
func (m FlowMap) SVG() string {
	byID, rows := m.layers()
	widest := 1
	for _, r := range rows {
		widest = max(widest, len(r))
	}
	// Room on the right for the edges that go back up or across a layer.
	w := float64(margin*2+widest*(boxW+gapX)) + backRoom
	h := float64(margin*2 + len(rows)*(boxH+gapY))
	for i, r := range rows {
		rowW := float64(len(r)*(boxW+gapX) - gapX)
		x0 := (w - backRoom - rowW) / 2
		for j, p := range r {
			p.x, p.y = x0+float64(j*(boxW+gapX)), float64(margin+i*(boxH+gapY))
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" class="w-full h-auto" data-testid="flow-map">`,
		w, h, esc(m.Title+": "+m.describe()))
	fmt.Fprintf(&sb, `<title>%s</title>`, esc(m.Title))
	sb.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">` +
		`<path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>`)
	var labels strings.Builder // drawn last, over the lines
	for _, n := range m.Nodes {
		from := byID[n.ID]
		for k, e := range n.Edges {
			to := byID[e.To]
			if to == nil {
				continue
			}
			x1, y1 := from.x+boxW/2, from.y+boxH
			x2, y2 := to.x+boxW/2, to.y
			var d string
			var lx, ly float64
			if to.layer > from.layer {
				d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1, y1+gapY/2, x2, y2-gapY/2, x2, y2)
				lx, ly = (x1+x2)/2, (y1+y2)/2
			} else { // back to an earlier layer (a retry, a loop) or across one: round the side
				x1, y1 = from.x+boxW, from.y+boxH/2
				x2, y2 = to.x+boxW, to.y+boxH/2
				bend := max(x1, x2) + 40 + float64(k*12)
				d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, bend, y1, bend, y2, x2, y2)
				lx, ly = bend-8, (y1+y2)/2
			}
			fmt.Fprintf(&sb, `<path d="%s" fill="none" stroke="#94a3b8" stroke-width="1.5" marker-end="url(#arrow)"><title>%s</title></path>`,
				d, esc(n.ID+" → "+e.To+": "+e.When))
			fmt.Fprintf(&labels, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#334155" stroke="#ffffff" stroke-width="3" paint-order="stroke" data-testid="map-edge">%s</text>`,
				lx, ly, esc(short(e.When, 28)))
		}
	}
	for _, r := range rows {
		for _, p := range r {
			fill, stroke, sw := "#ffffff", "#cbd5e1", 1.0
			current := ""
			if p.ID == m.Start {
				stroke = "#059669"
			}
			if p.ID == m.Current {
				fill, stroke, sw, current = "#fef3c7", "#d97706", 3, ` data-current="true" aria-current="step"`
			}
			fmt.Fprintf(&sb, `<g data-testid="map-node" data-node="%s"%s>`, esc(p.ID), current)
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="%.0f"/>`,
				p.x, p.y, boxW, boxH, fill, stroke, sw)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="12" font-family="monospace" font-weight="600" fill="#0f172a">%s</text>`,
				p.x+8, p.y+16, esc(short(p.ID, 22)))
			sub := p.Kind
			if m.Counted {
				sub = fmt.Sprintf("%s · %d in · %d on", short(p.Kind, 10), p.Reached, p.Left)
			}
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10" fill="#475569">%s</text>`, p.x+8, p.y+32, esc(sub))
			if p.ID == m.Current {
				fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10" font-weight="600" fill="#b45309">● here</text>`, p.x+8, p.y+45)
			}
			sb.WriteString(`</g>`)
		}
	}
	sb.WriteString(labels.String())
	sb.WriteString(`</svg>`)
	return sb.String()
}

// describe says the map in words for a screen reader.
func (m FlowMap) describe() string {
	var parts []string
	for _, n := range m.Nodes {
		s := n.ID + " (" + n.Kind + ")"
		if m.Counted {
			s += fmt.Sprintf(", reached by %d, %d went on", n.Reached, n.Left)
		}
		if n.ID == m.Current {
			s += ", the contact is here"
		}
		var out []string
		for _, e := range n.Edges {
			out = append(out, e.When+" to "+e.To)
		}
		if len(out) > 0 {
			s += ": " + strings.Join(out, ", ")
		}
		parts = append(parts, s)
	}
	return "starts at " + m.Start + "; " + strings.Join(parts, "; ")
}

// short cuts s to n characters with an ellipsis.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
