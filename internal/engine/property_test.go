package engine_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/engine"
)

// randomFlow writes a flow of random nodes; many are invalid and are
// skipped by the caller, the rest must behave.
func randomFlow(r *rand.Rand) string {
	n := 2 + r.IntN(8)
	name := func(i int) string { return fmt.Sprintf("n%d", i) }
	pick := func() string { return name(r.IntN(n)) }
	var b strings.Builder
	fmt.Fprintf(&b, "id: random\nlanguages: [en, hi]\nstart: n0\nmax_steps: %d\nnodes:\n", 5+r.IntN(50))
	types := []string{"text", "number", "choice", "yes_no", "date", "phone", "email", "media"}
	for i := range n {
		switch r.IntN(8) {
		case 0:
			fmt.Fprintf(&b, "  %s: {send: {en: 'hello {{x}}', hi: 'नमस्ते'}, next: %s}\n", name(i), pick())
		case 1:
			typ := types[r.IntN(len(types))]
			fmt.Fprintf(&b, "  %s: {ask: {prompt: 'q%d', type: %s, save: x, range: [0, 50], length: [1, 5], choices: [{value: a, label: A}, {value: b, label: {en: B, hi: बी}}], retry: {limit: %d, exhausted: %s}, timeout: {remind_after: 1h, remind: r, expire_after: 2h, then: %s}}, next: %s}\n",
				name(i), i, typ, r.IntN(4), pick(), pick(), pick())
		case 2:
			fmt.Fprintf(&b, "  %s: {branch: [{when: 'x == \"a\"', next: %s}, {when: 'x > 3', next: %s}, {else: %s}]}\n", name(i), pick(), pick(), pick())
		case 3:
			fmt.Fprintf(&b, "  %s: {handoff: {send: h}}\n", name(i))
		case 4:
			fmt.Fprintf(&b, "  %s: {ai_classify: {prompt: 'what?', intents: [a, b], save: x, next: {a: %s, b: %s}, fallback: %s}}\n", name(i), pick(), pick(), pick())
		case 5:
			fmt.Fprintf(&b, "  %s: {ai_extract: {input: '{{x}}', schema: {type: object, properties: {x: {type: number}}, required: [x]}, next: %s, fallback: %s}}\n", name(i), pick(), pick())
		default:
			fmt.Fprintf(&b, "  %s: {end: {send: bye}}\n", name(i))
		}
	}
	return b.String()
}

var inputs = []engine.Input{
	{Text: "hello"}, {Text: "1"}, {Text: "2"}, {Text: "७"}, {Text: "1,000"}, {Text: "yes"}, {Text: "नहीं"}, {Text: "a"}, {Text: "B"},
	{Text: ""}, {Text: "🙏"}, {Text: "STOP"}, {Text: "start"}, {Text: "help"}, {Text: "menu"}, {Text: strings.Repeat("x", 5000)},
	{Text: "2026-12-14"}, {Text: "+91 98765 43210"}, {Text: "a@b.in"}, {Media: true}, {Kind: engine.InputRemind}, {Kind: engine.InputExpire},
}

var ais = []engine.AIResult{
	{Intent: "a", Confidence: 0.9}, {Intent: "b", Confidence: 0.7}, {Intent: "c", Confidence: 1}, {Intent: "a", Confidence: 0.2},
	{Err: "down"}, {Fields: map[string]any{"x": 3.0}, Confidence: 1}, {Fields: map[string]any{"x": "a"}, Confidence: 1}, {},
}

func TestStep_PropertiesOverRandomFlowsAndInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	flows := 0
	for flows < 300 {
		f, err := engine.Parse("random.yaml", []byte(randomFlow(r)))
		if err != nil {
			continue // invalid at load: exactly what validation is for
		}
		flows++
		st := engine.State{}
		for range 40 {
			in := inputs[r.IntN(len(inputs))]
			next, actions, err := func() (s engine.State, a []engine.Action, err error) {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Step panicked: %v\nflow:\n%s", p, randomFlow(r))
					}
				}()
				s, a, err = engine.Step(f, st, in)
				for err == nil && s.Pending != nil { // the AI layer answers at once
					res := ais[r.IntN(len(ais))]
					var more []engine.Action
					s, more, err = engine.Step(f, s, engine.Input{Kind: engine.InputAI, AI: &res})
					a = append(a, more...)
				}
				return s, a, err
			}()
			if err != nil {
				t.Fatalf("Step: %v", err)
			}
			sends := 0
			for _, a := range actions {
				if a.Kind == engine.ActionSend {
					sends++
				}
			}
			// Each step sends at most a node's message and one reply.
			if sends > f.MaxSteps+2 {
				t.Fatalf("one input produced %d sends; the step limit is %d", sends, f.MaxSteps)
			}
			if next.Node != "" {
				if _, ok := f.Nodes[next.Node]; !ok {
					t.Fatalf("state at node %q, which the flow does not have", next.Node)
				}
			}
			if n := f.Nodes[next.Node]; next.Status == engine.StatusActive && next.Node != "" && n.Ask == nil && n.AIClassify == nil && n.AIExtract == nil {
				t.Fatalf("active at %q, a node that does not wait", next.Node)
			}
			st = next
		}
	}
}

func TestStep_IsPure(t *testing.T) {
	f := loadFlow(t, "clinic.yaml")
	st := engine.State{Vars: map[string]string{"name": "Asha"}, Node: "ask_age", Status: engine.StatusActive, FlowID: "clinic"}
	a1, acts1, _ := engine.Step(f, st, engine.Input{Text: "34"})
	a2, acts2, _ := engine.Step(f, st, engine.Input{Text: "34"})
	if fmt.Sprint(a1, acts1) != fmt.Sprint(a2, acts2) {
		t.Fatal("the same input gave different results")
	}
	if _, ok := st.Vars["age"]; ok {
		t.Fatal("Step changed the state it was given")
	}
}

func BenchmarkStep(b *testing.B) {
	data := []byte(`id: bench
start: q
nodes:
  q: {ask: {prompt: "How old are you?", type: number, range: [0, 120], save: age}, next: route}
  route: {branch: [{when: "age < 18", next: q}, {else: q}]}
`)
	f, err := engine.Parse("bench.yaml", data)
	if err != nil {
		b.Fatal(err)
	}
	st := engine.State{Node: "q", Status: engine.StatusActive, Vars: map[string]string{}}
	for b.Loop() {
		st, _, _ = engine.Step(f, st, engine.Input{Text: "42"})
	}
}
