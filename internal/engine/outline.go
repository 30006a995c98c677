package engine

import "sort"

// OutlineNode is one node of a flow as a person reads it: what it does, what it
// says or asks, and where it leads and when.
type OutlineNode struct {
	ID    string
	Kind  string // send, ask, branch, ai_classify, ai_extract, handoff, end, schedule
	Text  string // what it says or asks, in the flow's first language
	Edges []Edge
}

// Edge is one way out of a node.
type Edge struct {
	When string // "next", an answer key, a condition, an intent, "fallback", …
	To   string
}

// Outline lists the flow's nodes from its start, breadth first (the order
// a conversation meets them), then any the start does not reach: a
// readable diagram of the flow.
func (f *Flow) Outline() []OutlineNode {
	lang := f.lang()
	var out []OutlineNode
	seen := map[string]bool{}
	queue := []string{f.Start}
	seen[f.Start] = true
	for len(queue) > 0 {
		n := f.Nodes[queue[0]]
		queue = queue[1:]
		if n == nil {
			continue
		}
		o := outlineOf(n, lang)
		out = append(out, o)
		for _, e := range o.Edges {
			if !seen[e.To] {
				seen[e.To] = true
				queue = append(queue, e.To)
			}
		}
	}
	var rest []string
	for id := range f.Nodes {
		if !seen[id] {
			rest = append(rest, id)
		}
	}
	sort.Strings(rest)
	for _, id := range rest {
		out = append(out, outlineOf(f.Nodes[id], lang))
	}
	return out
}

func outlineOf(n *Node, lang string) OutlineNode {
	o := OutlineNode{ID: n.ID}
	add := func(when, to string) {
		if to != "" {
			o.Edges = append(o.Edges, Edge{When: when, To: to})
		}
	}
	sortedKeys := func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	switch {
	case n.Send != nil:
		o.Kind, o.Text = "send", n.Send.In(lang, lang)
		add("next", n.Next)
	case n.Ask != nil:
		o.Kind, o.Text = "ask "+n.Ask.Type, n.Ask.Prompt.In(lang, lang)
		for _, k := range sortedKeys(n.Ask.Routes) {
			add("answer "+k, n.Ask.Routes[k])
		}
		add("answer", n.Ask.Next)
		if n.Ask.Retry != nil {
			add("retries used up", n.Ask.Retry.Exhausted)
		}
		if n.Ask.Timeout != nil {
			add("no answer in time", n.Ask.Timeout.Then)
		}
	case n.Branch != nil:
		o.Kind = "branch"
		for _, c := range n.Branch {
			if c.Else != "" {
				add("otherwise", c.Else)
			} else {
				add("if "+c.When, c.Next)
			}
		}
	case n.AIClassify != nil:
		o.Kind, o.Text = "ai_classify", n.AIClassify.Prompt.In(lang, lang)
		for _, k := range sortedKeys(n.AIClassify.Next) {
			add("intent "+k, n.AIClassify.Next[k])
		}
		add("fallback", n.AIClassify.Fallback)
	case n.AIExtract != nil:
		o.Kind, o.Text = "ai_extract", n.AIExtract.Prompt.In(lang, lang)
		add("extracted", n.AIExtract.Next)
		add("fallback", n.AIExtract.Fallback)
	case n.Handoff != nil:
		o.Kind, o.Text = "handoff", n.Handoff.Send.In(lang, lang)
	case n.End != nil:
		o.Kind, o.Text = "end", n.End.Send.In(lang, lang)
	case n.Schedule != nil:
		o.Kind, o.Text = "schedule", "at "+n.Schedule.At+": "+n.Schedule.Send.In(lang, lang)
		add("next", n.Next)
	}
	return o
}
