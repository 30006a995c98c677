package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/engine"
)

func TestBuiltin_FlowsAreValid(t *testing.T) {
	l := engine.Builtin()
	if f := l.Default(); f == nil || f.ID != "clinic" {
		t.Fatalf("default built-in flow = %+v", f)
	}
	// Every question of the sample flows has a retry limit: none asks for ever.
	for _, f := range l.Flows() {
		if len(f.Warnings) > 0 {
			t.Errorf("built-in flow %s: %v", f.ID, f.Warnings)
		}
	}
}

func TestLoadDir_KeepsPinnedVersionsAndReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "id: a\nstart: s\nnodes:\n  s: {end: {send: v1}}\n")
	l, err := engine.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	v1 := l.Current("a")
	write("a.yaml", "id: a\nstart: s\nnodes:\n  s: {end: {send: v2}}\n")
	l2, err := engine.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	l2.Pin(v1) // a version a conversation is pinned to, as the store keeps it
	if l2.Version("a", v1.Version) == nil || l2.Current("a").Version == v1.Version {
		t.Fatal("the edited flow replaced the pinned version")
	}

	write("b.yaml", "id: b\nstart: nope\nnodes:\n  s: {end: {}}\n")
	write("c.yml", "id: a\nstart: s\nnodes:\n  s: {end: {}}\n")
	write("notes.txt", "not a flow")
	_, err = engine.LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), `b.yaml: start "nope" is not a node`) || !strings.Contains(err.Error(), `flow id "a" is also used by a.yaml`) {
		t.Fatalf("LoadDir error = %v", err)
	}
}

func TestLoadDir_ReadsJSONFlows(t *testing.T) {
	dir := t.TempDir()
	flow := `{"id": "j", "start": "s", "nodes": {"s": {"ask": {"prompt": {"en": "Name?"}, "type": "text", "save": "name"}, "next": "e"}, "e": {"end": {"send": "Bye {{name}}"}}}}`
	if err := os.WriteFile(filepath.Join(dir, "j.json"), []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := engine.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &engine.Session{Flow: lib.Current("j")}
	s.Say("hi")
	if got := s.Say("Asha"); len(got) != 1 || got[0] != "Bye Asha" {
		t.Fatalf("replies %q", got)
	}
}

func TestFlow_OutlineFollowsTheConversation(t *testing.T) {
	f := engine.Builtin().Current("clinic")
	outline := f.Outline()
	if len(outline) != len(f.Nodes) {
		t.Fatalf("outline has %d nodes, the flow %d", len(outline), len(f.Nodes))
	}
	if outline[0].ID != f.Start || outline[0].Kind != "send" || outline[0].Edges[0] != (engine.Edge{When: "next", To: "ask_name"}) {
		t.Fatalf("first: %+v", outline[0])
	}
	var route *engine.OutlineNode
	for i := range outline {
		if outline[i].ID == "route" {
			route = &outline[i]
		}
	}
	if route == nil || route.Kind != "branch" || route.Edges[0].When != "if age < 18" || route.Edges[len(route.Edges)-1].When != "otherwise" {
		t.Fatalf("route: %+v", route)
	}
}
