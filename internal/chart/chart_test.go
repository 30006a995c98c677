package chart_test

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chart"
)

// wellFormed fails unless svg parses as XML: text that would break out of
// an attribute or an element is escaped.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
		}
	}
}

func TestBars_EscapesAndDescribesItsFigures(t *testing.T) {
	svg := chart.Bars{Title: `Failures <"&">`, Labels: []string{`<script>`, "63016"},
		Series: []chart.Series{{Name: "Failed", Colour: "#dc2626", Values: []float64{2, 0.5}}}}.SVG()
	wellFormed(t, svg)
	if strings.Contains(svg, "<script>") {
		t.Error("a label was not escaped")
	}
	if !strings.Contains(svg, `aria-label="Failures &lt;&#34;&amp;&#34;&gt;: Failed: &lt;script&gt; 2, 63016 0.5"`) {
		t.Errorf("the aria-label does not carry the figures:\n%s", svg)
	}
	if empty := (chart.Bars{Title: "Nothing"}).SVG(); !strings.Contains(empty, "Nothing in this range") {
		t.Error("an empty chart does not say so")
	}
}

func TestFlowMap_LayersHighlightAndEscapes(t *testing.T) {
	m := chart.FlowMap{Title: "Map", Start: "a", Current: "c", Counted: true, Nodes: []chart.MapNode{
		{ID: "a", Kind: "send", Edges: []chart.MapEdge{{When: "next", To: "b"}}, Reached: 3, Left: 3},
		{ID: "b", Kind: "ask", Edges: []chart.MapEdge{{When: `if x < "1"`, To: "c"}, {When: "retry", To: "a"}}, Reached: 3, Left: 1},
		{ID: "c", Kind: "end", Reached: 1},
		{ID: "orphan", Kind: "end"},
	}}
	svg := m.SVG()
	wellFormed(t, svg)
	if n := strings.Count(svg, `data-testid="map-node"`); n != 4 {
		t.Errorf("%d nodes drawn, want 4 (the unreachable one too)", n)
	}
	if strings.Count(svg, `data-current="true"`) != 1 || !strings.Contains(svg, `data-node="c" data-current="true"`) {
		t.Error("c is not the one node highlighted")
	}
	if !strings.Contains(svg, `>if x &lt; &#34;1&#34;</text>`) || !strings.Contains(svg, "b (ask), reached by 3, 1 went on") {
		t.Errorf("edge labels or the description are missing:\n%s", svg)
	}
}
