package engine

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/parley-chat/parley/models"
)

// TemplateAt is a template a flow names, and where.
type TemplateAt struct {
	Node  string
	Where string // "template", "ask template", "remind_template", "end template", "handoff template", "schedule template"
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
	if n.Schedule != nil && n.Schedule.Template != nil {
		st := n.Schedule.Template // its parameters are numbered by place
		params := make(map[string]string, len(st.Params))
		for i, v := range st.Params {
			params[strconv.Itoa(i+1)] = v
		}
		add("schedule template", &TemplateUse{Name: st.Name, Language: st.Language, Params: params})
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

// CheckTemplates checks the templates flow f names against a template
// registry, read through lookup (the registry's templates of a name and
// language, of any platform): each must be there and take exactly the
// parameters the flow fills (errors); one not approved yet is a warning,
// as it may be by the time it is needed. synced false (an empty registry)
// checks nothing and warns once.
func CheckTemplates(f *Flow, synced bool, lookup func(name, language string) []*models.Template) (problems, warnings []*Error) {
	uses := f.Templates()
	if len(uses) == 0 {
		return nil, nil
	}
	if !synced {
		return nil, []*Error{{File: f.File, Problem: "the template registry is empty, so the templates this flow names were not checked: run `parley templates sync`"}}
	}
	for _, u := range uses {
		for _, lang := range f.TemplateLanguages(u.Use) {
			found := lookup(u.Use.Name, lang)
			if len(found) == 0 {
				problems = append(problems, &Error{File: f.File, Node: u.Node,
					Problem: fmt.Sprintf("%s %q (%s) is not in the template registry: create it at the platform and sync, or fix its name or language", u.Where, u.Use.Name, lang)})
				continue
			}
			t := found[0]
			for _, c := range found {
				if c.Status == models.TemplateApproved {
					t = c
				}
			}
			if why := t.Sendable(); why != "" {
				warnings = append(warnings, &Error{File: f.File, Node: u.Node, Problem: fmt.Sprintf("%s %q (%s) %s", u.Where, u.Use.Name, lang, why)})
			}
			if err := t.CheckParams(placeholders(u.Use.Params)); err != nil {
				problems = append(problems, &Error{File: f.File, Node: u.Node, Problem: u.Where + ": " + err.Error()})
			}
		}
	}
	return problems, warnings
}

// placeholders stands a value in for each parameter a flow fills: what
// is checked is which parameters are filled, not with what.
func placeholders(params map[string]string) map[string]string {
	out := make(map[string]string, len(params))
	for k := range params {
		out[k] = "x"
	}
	return out
}
