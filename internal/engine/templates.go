package engine

import "sort"

// TemplateAt is a template a flow names, and where.
type TemplateAt struct {
	Node  string
	Where string // "template", "ask template", "remind_template", "end template", "handoff template"
	Use   *TemplateUse
}

// templates lists the templates the node names.
func (n *Node) templates() []TemplateAt {
	var out []TemplateAt
	add := func(where string, u *TemplateUse) {
		if u != nil {
			out = append(out, TemplateAt{Node: n.ID, Where: where, Use: u})
		}
	}
	add("template", n.Template)
	if n.Ask != nil {
		add("ask template", n.Ask.Template)
		if n.Ask.Timeout != nil {
			add("remind_template", n.Ask.Timeout.RemindTemplate)
		}
	}
	if n.End != nil {
		add("end template", n.End.Template)
	}
	if n.Handoff != nil {
		add("handoff template", n.Handoff.Template)
	}
	return out
}

// Templates lists every template the flow names, by node, so that a
// validator with the template registry can check each exists, is approved
// and has its parameters filled.
func (f *Flow) Templates() []TemplateAt {
	ids := make([]string, 0, len(f.Nodes))
	for id := range f.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []TemplateAt
	for _, id := range ids {
		out = append(out, f.Nodes[id].templates()...)
	}
	return out
}

// TemplateLanguages are the languages a template use may be sent in: its
// own, else each of the flow's (a conversation's language picks).
func (f *Flow) TemplateLanguages(u *TemplateUse) []string {
	if u.Language != "" {
		return []string{u.Language}
	}
	if len(f.Languages) == 0 {
		return []string{""}
	}
	return f.Languages
}
