package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// AIClassify asks the AI layer which of a set of intents a text expresses
// and branches on the answer. With a prompt it first asks the contact and
// classifies the reply; without one it classifies Input, a text with
// variables interpolated.
type AIClassify struct {
	Prompt        Text              `yaml:"prompt"`
	Input         string            `yaml:"input"`
	Intents       []string          `yaml:"intents"`
	Save          string            `yaml:"save"`           // variable that keeps the intent
	MinConfidence float64           `yaml:"min_confidence"` // below it the fallback runs (default 0.6)
	Next          map[string]string `yaml:"next"`           // intent → node; an intent without one falls back
	Fallback      string            `yaml:"fallback"`       // AI off, failing, or unsure
}

// AIExtract asks the AI layer for fields described by a JSON schema (an
// object of string, number, integer and boolean properties, with enum and
// required) and saves them as variables, Save_ prefixed when Save is set.
type AIExtract struct {
	Prompt        Text           `yaml:"prompt"`
	Input         string         `yaml:"input"`
	Schema        map[string]any `yaml:"schema"`
	Save          string         `yaml:"save"`
	MinConfidence float64        `yaml:"min_confidence"`
	Next          string         `yaml:"next"`
	Fallback      string         `yaml:"fallback"`

	fields []schemaField
}

// AITask names what the AI layer is asked to do.
type AITask string

// AI tasks.
const (
	AIClassifyTask AITask = "classify"
	AIExtractTask  AITask = "extract"
)

// AIRequest is what a conversation waits on while an AI node runs. The
// caller answers it with an InputAI carrying the AIResult.
type AIRequest struct {
	Task     AITask         `json:"task"`
	Node     string         `json:"node"`
	Text     string         `json:"text"`
	Language string         `json:"language,omitempty"`
	Intents  []string       `json:"intents,omitempty"`
	Schema   map[string]any `json:"schema,omitempty"`
	// MediaID is a photo to read the fields off (0: read Text).
	MediaID int64 `json:"media_id,omitempty"`
}

// AIResult is the AI layer's answer. Err set (the layer is off or failed
// for good) sends the conversation to the node's fallback.
type AIResult struct {
	Intent     string         `json:"intent,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
	Confidence float64        `json:"confidence"`
	Err        string         `json:"err,omitempty"`
}

// ErrAwaitingAI is returned for a message given to a conversation that
// waits on the AI layer: the caller holds the message until the result
// has been applied, so the contact's messages keep their order.
var ErrAwaitingAI = errors.New("the conversation is waiting for the AI layer")

// DefaultMinConfidence is the confidence below which AI nodes fall back.
const DefaultMinConfidence = 0.6

type schemaField struct {
	name, typ string
	enum      []string
	required  bool
}

// aiPrompt is the question an AI node asks the contact first, if any.
func aiPrompt(n *Node) Text {
	switch {
	case n.AIClassify != nil:
		return n.AIClassify.Prompt
	case n.AIExtract != nil:
		return n.AIExtract.Prompt
	}
	return nil
}

// aiInput is the text an AI node without a prompt reads.
func aiInput(n *Node) string {
	if n.AIClassify != nil {
		return n.AIClassify.Input
	}
	return n.AIExtract.Input
}

// enterAI runs when the flow reaches an AI node: ask the contact first,
// or hand the node's input to the AI layer straight away.
func (r *run) enterAI(n *Node) {
	if p := aiPrompt(n); p != nil {
		r.say(p)
		return
	}
	r.requestAI(n, r.interpolate(aiInput(n)))
}

// aiFallback is where an AI node goes when the AI layer cannot help.
func aiFallback(n *Node) string {
	if n.AIClassify != nil {
		return n.AIClassify.Fallback
	}
	return n.AIExtract.Fallback
}

// requestAIImage sets the conversation waiting on the AI layer to read
// fields off a photo (with what was written with it).
func (r *run) requestAIImage(n *Node, e *AIExtract, caption string, imageID int64) {
	req := &AIRequest{Task: AIExtractTask, Node: n.ID, Text: strings.TrimSpace(caption), Language: r.lang, Schema: e.Schema, MediaID: imageID}
	r.st.Pending = req
	r.emit(Action{Kind: ActionAI, AI: req})
}

// requestAI sets the conversation waiting on the AI layer for text.
func (r *run) requestAI(n *Node, text string) {
	text = strings.TrimSpace(text)
	req := &AIRequest{Node: n.ID, Text: text, Language: r.lang}
	fallback := ""
	if c := n.AIClassify; c != nil {
		req.Task, req.Intents, fallback = AIClassifyTask, c.Intents, c.Fallback
	} else {
		req.Task, req.Schema, fallback = AIExtractTask, n.AIExtract.Schema, n.AIExtract.Fallback
	}
	if text == "" {
		r.goTo(fallback) // nothing to ask the AI about
		return
	}
	r.st.Pending = req
	r.emit(Action{Kind: ActionAI, AI: req})
}

// resolveAI applies the AI layer's answer to the node that asked.
func (r *run) resolveAI(res *AIResult) {
	n := r.f.Nodes[r.st.Pending.Node]
	r.st.Pending = nil
	if n == nil || (n.AIClassify == nil && n.AIExtract == nil && (n.Ask == nil || n.Ask.extract == nil)) {
		r.restart() // the pinned node is gone: start over
		return
	}
	if res == nil {
		res = &AIResult{Err: "no result"}
	}
	if c := n.AIClassify; c != nil {
		target, ok := c.Next[res.Intent]
		if res.Err != "" || !ok || res.Confidence < c.MinConfidence || !slices.Contains(c.Intents, res.Intent) {
			r.goTo(c.Fallback)
			return
		}
		if c.Save != "" {
			r.st.Vars[c.Save] = res.Intent
		}
		r.goTo(target)
		return
	}
	e := n.AIExtract
	if e == nil {
		e = n.Ask.extract // a media question reading a photo
	}
	values, ok := e.check(res.Fields)
	if res.Err != "" || !ok || res.Confidence < e.MinConfidence {
		r.goTo(e.Fallback)
		return
	}
	for name, v := range values {
		if e.Save != "" {
			name = e.Save + "_" + name
		}
		r.st.Vars[name] = v
	}
	r.goTo(e.Next)
}

// check holds extracted fields against the schema and returns them as
// variable values; a required field missing or any field of the wrong
// type fails the extraction.
func (e *AIExtract) check(fields map[string]any) (map[string]string, bool) {
	out := map[string]string{}
	for _, f := range e.fields {
		v, present := fields[f.name]
		if !present || v == nil || v == "" {
			if f.required {
				return nil, false
			}
			continue
		}
		s, ok := fieldValue(f.typ, v)
		if !ok || (f.enum != nil && !slices.Contains(f.enum, s)) {
			return nil, false
		}
		out[f.name] = s
	}
	return out, true
}

func fieldValue(typ string, v any) (string, bool) {
	switch typ {
	case "string":
		s, ok := v.(string)
		return strings.TrimSpace(s), ok && strings.TrimSpace(s) != ""
	case "boolean":
		b, ok := v.(bool)
		return strconv.FormatBool(b), ok
	}
	var n float64
	switch x := v.(type) {
	case float64:
		n = x
	case int:
		n = float64(x)
	case string: // models sometimes quote numbers
		var ok bool
		if n, ok = parseNumber(x); !ok {
			return "", false
		}
	default:
		return "", false
	}
	if math.IsNaN(n) || math.IsInf(n, 0) || (typ == "integer" && n != math.Trunc(n)) {
		return "", false
	}
	return strconv.FormatFloat(n, 'f', -1, 64), true
}

// validateAI checks an AI node: what it reads, where it goes, and for
// extraction a schema Parley can hold fields against.
func validateAI(n *Node, ref func(string, string) error, fail func(string, string, ...any) error) error {
	id := n.ID
	var prompt Text
	var input, save, fallback string
	var confidence *float64
	if c := n.AIClassify; c != nil {
		prompt, input, save, fallback, confidence = c.Prompt, c.Input, c.Save, c.Fallback, &c.MinConfidence
		if len(c.Intents) == 0 {
			return fail(id, "ai_classify needs intents")
		}
		seen := map[string]bool{}
		for _, in := range c.Intents {
			if in == "" || seen[in] {
				return fail(id, "intent %q is empty or repeated", in)
			}
			seen[in] = true
		}
		if len(c.Next) == 0 || n.Next != "" {
			return fail(id, "ai_classify needs next inside it: a node for each intent it routes (intent: node)")
		}
		for _, intent := range sortedKeys(c.Next) {
			if !seen[intent] {
				return fail(id, "next names %q, which is not one of the intents", intent)
			}
			if err := ref("next "+intent, c.Next[intent]); err != nil {
				return err
			}
		}
	} else {
		e := n.AIExtract
		prompt, input, save, fallback, confidence = e.Prompt, e.Input, e.Save, e.Fallback, &e.MinConfidence
		fields, err := parseSchema(e.Schema)
		if err != nil {
			return fail(id, "schema: %v", err)
		}
		e.fields = fields
		if e.Next == "" {
			e.Next = n.Next
		}
		if err := ref("next", e.Next); err != nil {
			return err
		}
	}
	switch {
	case prompt == nil && strings.TrimSpace(input) == "":
		return fail(id, "an AI node needs a prompt (ask the contact) or an input (a text such as \"{{answer}}\")")
	case prompt != nil && input != "":
		return fail(id, "an AI node takes a prompt or an input, not both")
	case save != "" && !varName.MatchString(save):
		return fail(id, "save %q is not a variable name", save)
	case *confidence < 0 || *confidence > 1:
		return fail(id, "min_confidence must be between 0 and 1")
	}
	if *confidence == 0 {
		*confidence = DefaultMinConfidence
	}
	return ref("fallback", fallback)
}

var schemaTypes = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true}

// parseSchema reads the part of JSON Schema that maps onto variables: an
// object whose properties are strings, numbers, integers or booleans.
func parseSchema(s map[string]any) ([]schemaField, error) {
	if s == nil {
		return nil, errors.New("missing")
	}
	if s["type"] != "object" {
		return nil, errors.New(`type must be "object"`)
	}
	props, ok := s["properties"].(map[string]any)
	if !ok || len(props) == 0 {
		return nil, errors.New("properties must name at least one field")
	}
	var fields []schemaField
	for _, name := range sortedKeys(props) {
		p, ok := props[name].(map[string]any)
		if !ok || !varName.MatchString(name) {
			return nil, fmt.Errorf("property %q must be a variable name with an object describing it", name)
		}
		typ, _ := p["type"].(string)
		if !schemaTypes[typ] {
			return nil, fmt.Errorf("property %q: type must be string, number, integer or boolean", name)
		}
		f := schemaField{name: name, typ: typ}
		if enum, ok := p["enum"].([]any); ok {
			for _, v := range enum {
				f.enum = append(f.enum, fmt.Sprint(v))
			}
		}
		fields = append(fields, f)
	}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			i := slices.IndexFunc(fields, func(f schemaField) bool { return f.name == r })
			if i < 0 {
				return nil, fmt.Errorf("required names %v, which is not a property", r)
			}
			fields[i].required = true
		}
	}
	return fields, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
