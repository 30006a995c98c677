package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlowsValidate(t *testing.T) {
	code, out, stderr := runCmd(t, nil, "flows", "validate")
	if code != exitOK || !strings.Contains(out, "ok  clinic") {
		t.Fatalf("validate built-in = %d\n%s%s", code, out, stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: b\nstart: a\nnodes:\n  a: {send: hi, next: missing}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, nil, "flows", "validate", dir)
	if code != exitFailure || !strings.Contains(stderr, `broken.yaml: node "a": next "missing" is not a node`) {
		t.Fatalf("validate broken = %d: %s", code, stderr)
	}
}

func TestFlowsSimulate_Scripted(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(script, []byte("hello\nAsha\n१२\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, nil, "flows", "simulate", "clinic", "--script", script)
	if code != exitOK {
		t.Fatalf("simulate = %d: %s", code, stderr)
	}
	for _, want := range []string{"< What is your name?", "< How old are you, Asha?", "< A parent or guardian needs to book for you.", "status ended", "age=12"} {
		if !strings.Contains(out, want) {
			t.Errorf("simulation lacks %q:\n%s", want, out)
		}
	}
}
