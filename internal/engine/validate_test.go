package engine_test

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/engine"
)

func TestParse_RefusesBadFlowsNamingFileNodeAndProblem(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"not yaml", "id: [", "bad.yaml: not a valid flow"},
		{"unknown field", "id: x\nstart: a\nnodes:\n  a: {end: {}, colour: red}", "field colour not found"},
		{"no id", "start: a\nnodes:\n  a: {end: {}}", "the flow has no id"},
		{"start missing", "id: x\nstart: b\nnodes:\n  a: {end: {}}", `start "b" is not a node`},
		{"unknown node", "id: x\nstart: a\nnodes:\n  a: {send: hi, next: nowhere}", `node "a": next "nowhere" is not a node`},
		{"two kinds", "id: x\nstart: a\nnodes:\n  a: {send: hi, end: {}, next: a}", `node "a": a node needs exactly one`},
		{"missing prompt", "id: x\nstart: a\nnodes:\n  a: {ask: {type: text}, next: b}\n  b: {end: {}}", `node "a": ask has no prompt`},
		{"bad answer type", "id: x\nstart: a\nnodes:\n  a: {ask: {prompt: q, type: colour}, next: b}\n  b: {end: {}}", `unknown answer type "colour"`},
		{"choice without choices", "id: x\nstart: a\nnodes:\n  a: {ask: {prompt: q, type: choice}, next: b}\n  b: {end: {}}", "a choice question needs choices"},
		{"bad branch target", "id: x\nstart: a\nnodes:\n  a: {branch: [{when: 'age > 1', next: zz}, {else: b}]}\n  b: {end: {}}", `branch case 1 next "zz" is not a node`},
		{"branch without else", "id: x\nstart: a\nnodes:\n  a: {branch: [{when: 'age > 1', next: b}]}\n  b: {end: {}}", "branch has no else"},
		{"bad condition", "id: x\nstart: a\nnodes:\n  a: {branch: [{when: 'age >', next: b}, {else: b}]}\n  b: {end: {}}", "does not compile"},
		{"unreachable", "id: x\nstart: a\nnodes:\n  a: {end: {}}\n  lost: {end: {}}", `node "lost": node is unreachable`},
		{"cycle without a wait", "id: x\nstart: a\nnodes:\n  a: {send: hi, next: b}\n  b: {branch: [{when: 'true', next: a}, {else: c}]}\n  c: {end: {}}", "cycle that never waits"},
		{"ai without intents", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, next: {}, fallback: b}}\n  b: {end: {}}", `node "a": ai_classify needs intents`},
		{"ai next not an intent", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, intents: [x], next: {y: b}, fallback: b}}\n  b: {end: {}}", `next names "y", which is not one of the intents`},
		{"ai next outside", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, intents: [x], next: {x: b}, fallback: b}, next: b}\n  b: {end: {}}", "needs next inside it"},
		{"ai without fallback", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, intents: [x], next: {x: b}}}\n  b: {end: {}}", "fallback is missing"},
		{"ai reads nothing", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {intents: [x], next: {x: b}, fallback: b}}\n  b: {end: {}}", "needs a prompt"},
		{"ai prompt and input", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, input: '{{v}}', intents: [x], next: {x: b}, fallback: b}}\n  b: {end: {}}", "not both"},
		{"ai confidence", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {prompt: q, intents: [x], next: {x: b}, fallback: b, min_confidence: 2}}\n  b: {end: {}}", "min_confidence must be between 0 and 1"},
		{"schema not an object", "id: x\nstart: a\nnodes:\n  a: {ai_extract: {prompt: q, schema: {type: array}, next: b, fallback: b}}\n  b: {end: {}}", `schema: type must be "object"`},
		{"schema nested", "id: x\nstart: a\nnodes:\n  a: {ai_extract: {prompt: q, schema: {type: object, properties: {p: {type: object}}}, next: b, fallback: b}}\n  b: {end: {}}", `property "p": type must be`},
		{"schema required unknown", "id: x\nstart: a\nnodes:\n  a: {ai_extract: {prompt: q, schema: {type: object, properties: {p: {type: string}}, required: [q]}, next: b, fallback: b}}\n  b: {end: {}}", "required names q"},
		{"ai cycle without a wait", "id: x\nstart: a\nnodes:\n  a: {ai_classify: {input: '{{v}}', intents: [x], next: {x: a}, fallback: b}}\n  b: {end: {}}", "cycle that never waits"},
		{"bad duration", "id: x\nstart: a\nnodes:\n  a: {ask: {prompt: q, timeout: {remind_after: soon}}, next: b}\n  b: {end: {}}", `bad duration "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.Parse("bad.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "bad.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestParse_CycleThroughAnAskIsFine(t *testing.T) {
	_, err := engine.Parse("ok.yaml", []byte("id: x\nstart: a\nnodes:\n  a: {send: hi, next: q}\n  q: {ask: {prompt: \"again?\", type: yes_no, routes: {yes: a, no: b}}}\n  b: {end: {}}"))
	if err != nil {
		t.Fatal(err)
	}
}

func TestParse_VersionIsTheContentHash(t *testing.T) {
	a, _ := engine.Parse("f.yaml", []byte("id: x\nstart: a\nnodes:\n  a: {end: {send: bye}}"))
	b, _ := engine.Parse("f.yaml", []byte("id: x\nstart: a\nnodes:\n  a: {end: {send: goodbye}}"))
	if a.Version == "" || a.Version == b.Version {
		t.Fatalf("versions %q and %q: an edit must change the version", a.Version, b.Version)
	}
}

func TestParse_ReportsEveryProblemOfAFile(t *testing.T) {
	src := "id: x\nstart: a\nnodes:\n" +
		"  a: {send: hi, next: nowhere}\n" +
		"  b: {ask: {type: text}, next: c}\n" +
		"  c: {branch: [{when: 'age > 1', next: d}]}\n" +
		"  d: {end: {}}\n"
	_, err := engine.Parse("many.yaml", []byte(src))
	if err == nil {
		t.Fatal("Parse accepted a flow with four problems")
	}
	for _, want := range []string{
		`many.yaml: node "a": next "nowhere" is not a node`,
		`many.yaml: node "b": ask has no prompt`,
		`many.yaml: node "c": branch has no else`,
		`many.yaml: node "b": node is unreachable`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A question without a retry limit runs (the engine's default limit
// applies) but is named in the flow's warnings, which are not errors.
func TestParse_WarnsAboutAQuestionWithoutARetryLimit(t *testing.T) {
	src := "id: x\nstart: a\nnodes:\n" +
		"  a: {ask: {prompt: q, type: yes_no}, next: b}\n" +
		"  b: {ask: {prompt: r, type: yes_no, retry: {limit: 2, exhausted: c}}, next: c}\n" +
		"  c: {end: {}}\n"
	f, err := engine.Parse("w.yaml", []byte(src))
	if err != nil {
		t.Fatalf("a question without a retry limit is a warning, not an error: %v", err)
	}
	if len(f.Warnings) != 1 || !strings.HasPrefix(f.Warnings[0].Error(), `w.yaml: node "a": ask has no retry limit`) {
		t.Fatalf("warnings = %v, want one about node a", f.Warnings)
	}
	if _, err := engine.Parse("n.yaml", []byte(strings.Replace(src, "limit: 2", "limit: -1", 1))); err == nil || !strings.Contains(err.Error(), "retry limit must be 1 or more") {
		t.Fatalf("a negative limit: %v", err)
	}
}

// Without a retry limit, answers that do not fit stop after the default
// limit and hand the contact to a person, instead of asking for ever.
func TestStep_AQuestionWithoutALimitHandsOffAfterTheDefault(t *testing.T) {
	f, err := engine.Parse("d.yaml", []byte("id: x\nstart: a\nnodes:\n  a: {ask: {prompt: 'Yes or no?', type: yes_no}, next: b}\n  b: {end: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := engine.Step(f, engine.State{}, engine.Input{Kind: engine.InputMessage, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	var last []engine.Action
	for i := 0; i < 10 && st.Status == engine.StatusActive; i++ {
		st, last, err = engine.Step(f, st, engine.Input{Kind: engine.InputMessage, Text: "perhaps"})
		if err != nil {
			t.Fatal(err)
		}
		asked++
	}
	if st.Status != engine.StatusHandoff || asked != engine.DefaultRetryLimit {
		t.Fatalf("after %d answers that do not fit: status %q, want handoff after %d", asked, st.Status, engine.DefaultRetryLimit)
	}
	var handedOff, said bool
	for _, a := range last {
		handedOff = handedOff || a.Kind == engine.ActionHandoff
		said = said || (a.Kind == engine.ActionSend && a.Text == engine.DefaultHandoffNote[""])
	}
	if !handedOff || !said {
		t.Fatalf("last actions %+v: want the handoff note and a handoff", last)
	}
}
