package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
)

var askTypes = map[string]bool{"text": true, "number": true, "choice": true, "yes_no": true, "date": true, "phone": true, "email": true, "media": true}

// validate checks a parsed flow: every reference resolves, every node is
// reachable, every node has what its kind needs, every condition compiles,
// and no cycle runs without waiting for the contact. It reports every
// problem it finds (the first of each node), one error each, joined, and
// keeps what is doubtful but runnable in f.Warnings.
func validate(f *Flow) error {
	var problems []error
	fail := func(node, format string, args ...any) error {
		err := &Error{File: f.File, Node: node, Problem: fmt.Sprintf(format, args...)}
		problems = append(problems, err)
		return err
	}
	if f.ID == "" {
		fail("", "the flow has no id")
	}
	if len(f.Nodes) == 0 {
		fail("", "the flow has no nodes")
		return errors.Join(problems...)
	}
	_, hasStart := f.Nodes[f.Start]
	if !hasStart {
		fail("", "start %q is not a node", f.Start)
	}
	ids := make([]string, 0, len(f.Nodes))
	for id := range f.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids) // report problems in a stable order
	for _, id := range ids {
		_ = validateNode(f, f.Nodes[id], fail) // recorded by fail
	}
	if hasStart {
		for _, id := range unreachableNodes(f) {
			fail(id, "node is unreachable from start %q", f.Start)
		}
	}
	if cycle := cycleWithoutWait(f); cycle != "" {
		fail(cycle, "node is on a cycle that never waits for the contact (add an ask)")
	}
	return errors.Join(problems...)
}

// validateNode checks one node and returns its first problem (which fail
// has recorded), or nil.
func validateNode(f *Flow, n *Node, fail func(string, string, ...any) error) error {
	id := n.ID
	kinds := 0
	for _, set := range []bool{n.Send != nil, n.Ask != nil, n.Branch != nil, n.AIClassify != nil, n.AIExtract != nil, n.Handoff != nil, n.End != nil, n.Schedule != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fail(id, "a node needs exactly one of send, ask, branch, ai_classify, ai_extract, handoff, end or schedule (has %d)", kinds)
	}
	if n.Template != nil && n.Send == nil {
		return fail(id, "template goes on a send node (on an ask, under ask; on a handoff or end, beside its send)")
	}
	for _, u := range n.templates() {
		if err := validateTemplateUse(u, id, fail); err != nil {
			return err
		}
		if u.Use.Language == "" && len(f.Languages) == 0 {
			return fail(id, "%s needs a language: the flow names no languages to take it from", u.Where)
		}
	}
	ref := func(what, target string) error {
		if target == "" {
			return fail(id, "%s is missing", what)
		}
		if _, ok := f.Nodes[target]; !ok {
			return fail(id, "%s %q is not a node", what, target)
		}
		return nil
	}
	switch {
	case n.Send != nil:
		if len(n.Send) == 0 {
			return fail(id, "send has no text")
		}
		return ref("next", n.Next)
	case n.Ask != nil:
		return validateAsk(f, n, ref, fail)
	case n.Schedule != nil:
		if err := validateSchedule(n, fail); err != nil {
			return err
		}
		return ref("next", n.Next)
	case n.AIClassify != nil || n.AIExtract != nil:
		return validateAI(n, ref, fail)
	case n.Branch != nil:
		hasElse := false
		for i, c := range n.Branch {
			switch {
			case c.Else != "":
				hasElse = true
				if err := ref("else", c.Else); err != nil {
					return err
				}
			case c.When == "":
				return fail(id, "branch case %d has neither when nor else", i+1)
			default:
				prog, err := expr.Compile(c.When, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(), expr.AsBool())
				if err != nil {
					return fail(id, "branch case %d: condition %q does not compile: %v", i+1, c.When, err)
				}
				c.program = prog
				if err := ref(fmt.Sprintf("branch case %d next", i+1), c.Next); err != nil {
					return err
				}
			}
		}
		if !hasElse {
			return fail(id, "branch has no else: a contact matching no case would be stranded")
		}
	}
	return nil
}

// validateTemplateUse checks what a flow can know of a template alone:
// it is named, and each parameter has a value.
func validateTemplateUse(u TemplateAt, id string, fail func(string, string, ...any) error) error {
	if u.Use.Name == "" {
		return fail(id, "%s needs a name", u.Where)
	}
	for k, v := range u.Use.Params {
		if strings.TrimSpace(v) == "" {
			return fail(id, "%s parameter %q has no value", u.Where, k)
		}
	}
	return nil
}

func validateAsk(f *Flow, n *Node, ref func(string, string) error, fail func(string, string, ...any) error) error {
	a, id := n.Ask, n.ID
	warn := func(node, format string, args ...any) {
		f.Warnings = append(f.Warnings, &Error{File: f.File, Node: node, Problem: fmt.Sprintf(format, args...)})
	}
	if len(a.Prompt) == 0 {
		return fail(id, "ask has no prompt")
	}
	if a.Type == "" {
		a.Type = "text"
	}
	if !askTypes[a.Type] {
		return fail(id, "unknown answer type %q", a.Type)
	}
	if a.Length != nil && (len(a.Length) != 2 || a.Length[0] > a.Length[1] || a.Length[0] < 0) {
		return fail(id, "length must be [min, max]")
	}
	if a.Range != nil && (len(a.Range) != 2 || a.Range[0] > a.Range[1]) {
		return fail(id, "range must be [min, max]")
	}
	if a.Type == "choice" && len(a.Choices) == 0 {
		return fail(id, "a choice question needs choices")
	}
	for i, c := range a.Choices {
		if c.Value == "" || len(c.Label) == 0 {
			return fail(id, "choice %d needs a value and a label", i+1)
		}
	}
	if a.Retry != nil && a.Retry.Limit < 0 {
		return fail(id, "retry limit must be 1 or more")
	}
	if a.Retry == nil || a.Retry.Limit == 0 {
		warn(id, "ask has no retry limit: after %d answers that do not fit, the contact is handed to a person (set retry: {limit: N, exhausted: node})", DefaultRetryLimit)
	}
	if a.Retry != nil && a.Retry.Exhausted != "" {
		if err := ref("retry exhausted", a.Retry.Exhausted); err != nil {
			return err
		}
	}
	if a.Timeout != nil && a.Timeout.Then != "" {
		if err := ref("timeout then", a.Timeout.Then); err != nil {
			return err
		}
	}
	for key, target := range a.Routes {
		if err := ref("route "+key, target); err != nil {
			return err
		}
	}
	if a.Next == "" {
		a.Next = n.Next
	}
	if a.Next == "" && len(a.Routes) == 0 {
		return fail(id, "ask needs a next (or routes)")
	}
	if err := validateAskSchema(a, id, ref, fail); err != nil {
		return err
	}
	if a.Next != "" {
		return ref("next", a.Next)
	}
	return nil
}

// validateAskSchema checks a media question's schema and makes it the
// extraction the AI layer is asked for.
func validateAskSchema(a *Ask, id string, ref func(string, string) error, fail func(string, string, ...any) error) error {
	switch {
	case a.Schema == nil && (a.Fallback != "" || a.MinConfidence != 0):
		return fail(id, "fallback and min_confidence go with a schema")
	case a.Schema == nil:
		return nil
	case a.Type != "media":
		return fail(id, "a schema reads a photo: it goes on a question of type media")
	case a.Next == "":
		return fail(id, "a media question with a schema needs a next")
	case a.Save != "" && !varName.MatchString(a.Save):
		return fail(id, "save %q is not a variable name", a.Save)
	case a.MinConfidence < 0 || a.MinConfidence > 1:
		return fail(id, "min_confidence must be between 0 and 1")
	}
	fields, err := parseSchema(a.Schema)
	if err != nil {
		return fail(id, "schema: %v", err)
	}
	e := &AIExtract{Schema: a.Schema, Save: a.Save, MinConfidence: a.MinConfidence, Next: a.Next, Fallback: a.Fallback, fields: fields}
	if e.MinConfidence == 0 {
		e.MinConfidence = DefaultMinConfidence
	}
	if e.Fallback == "" {
		e.Fallback = a.Next
	}
	a.extract = e
	return ref("fallback", e.Fallback)
}

// edges lists where a node can lead, and whether it waits for the contact.
func edges(n *Node) (next []string, waits bool) {
	switch {
	case n.Send != nil, n.Schedule != nil:
		return []string{n.Next}, false
	case n.Branch != nil:
		for _, c := range n.Branch {
			next = append(next, c.Next+c.Else)
		}
		return next, false
	case n.Ask != nil:
		next = append(next, n.Ask.Next)
		for _, t := range n.Ask.Routes {
			next = append(next, t)
		}
		if n.Ask.Retry != nil {
			next = append(next, n.Ask.Retry.Exhausted)
		}
		if n.Ask.Timeout != nil {
			next = append(next, n.Ask.Timeout.Then)
		}
		if n.Ask.extract != nil {
			next = append(next, n.Ask.extract.Fallback)
		}
		return next, true
	case n.AIClassify != nil:
		for _, t := range n.AIClassify.Next {
			next = append(next, t)
		}
		// Without a prompt it does not wait for the contact: a cycle through
		// it would call the AI layer again and again.
		return append(next, n.AIClassify.Fallback), n.AIClassify.Prompt != nil
	case n.AIExtract != nil:
		return []string{n.AIExtract.Next, n.AIExtract.Fallback}, n.AIExtract.Prompt != nil
	}
	return nil, true // handoff, end
}

func unreachableNodes(f *Flow) []string {
	seen := map[string]bool{f.Start: true}
	queue := []string{f.Start}
	for len(queue) > 0 {
		next, _ := edges(f.Nodes[queue[0]])
		queue = queue[1:]
		for _, t := range next {
			if _, ok := f.Nodes[t]; ok && !seen[t] {
				seen[t] = true
				queue = append(queue, t)
			}
		}
	}
	var out []string
	for id := range f.Nodes {
		if !seen[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// cycleWithoutWait returns a node on a cycle made only of nodes that run
// straight on (send, branch), or "".
func cycleWithoutWait(f *Flow) string {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var visit func(id string) string
	visit = func(id string) string {
		n := f.Nodes[id]
		next, waits := edges(n)
		if waits {
			return ""
		}
		state[id] = active
		for _, t := range next {
			if _, ok := f.Nodes[t]; !ok {
				continue // reported as a missing node
			}
			switch state[t] {
			case active:
				return t
			case unvisited:
				if c := visit(t); c != "" {
					return c
				}
			}
		}
		state[id] = done
		return ""
	}
	ids := make([]string, 0, len(f.Nodes))
	for id := range f.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if state[id] == unvisited {
			if c := visit(id); c != "" {
				return c
			}
		}
	}
	return ""
}
