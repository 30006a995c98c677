package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/pgtest"
)

// Every command explains itself with --help, and does nothing else: dev
// --help once started the server.
func TestCLI_EveryCommandTakesHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"serve", "--help"}, {"dev", "--help"}, {"dev", "-h"}, {"migrate", "--help"}, {"migrate", "up", "--help"},
		{"keys", "--help"}, {"keys", "generate", "--help"}, {"keys", "rotate", "--help"}, {"keys", "status", "--help"},
		{"flows", "--help"}, {"flows", "validate", "--help"}, {"flows", "simulate", "--help"}, {"version", "--help"}, {"help", "dev"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// No environment at all: a command that ran would fail.
			code, out, stderr := runCmd(t, nil, args...)
			if code != exitOK || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want the usage and 0", code, out, stderr)
			}
		})
	}
}

// A command line with anything unknown or extra is refused (exit 2) and
// nothing runs.
func TestCLI_RefusesUnknownFlagsAndExtraArguments(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(script, []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"flows", "simulate", "clinic", "--scrpt", script}, "unknown flag: --scrpt"},
		{[]string{"flows", "simulate"}, "accepts 1 arg"},
		{[]string{"flows", "simulate", "clinic", "triage"}, "accepts 1 arg"},
		{[]string{"flows", "validate", "a", "b"}, "accepts at most 1 arg"},
		{[]string{"serve", "now"}, `unknown command "now"`},
		{[]string{"dev", "--port", "9"}, "unknown flag: --port"},
		{[]string{"migrate", "sideways"}, `unknown command "sideways"`},
		{[]string{"migrate"}, "migrate needs one of"},
		{[]string{"keys", "generate", "rsa"}, `invalid argument "rsa"`},
		{[]string{"keys", "generate", "session", "extra"}, "accepts at most 1 arg"},
		{[]string{"version", "2"}, `unknown command "2"`},
		{[]string{}, "no command given"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, stderr := runCmd(t, nil, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "--help") {
				t.Fatalf("exit %d, stderr %q; want 2 and %q with a hint to --help", code, stderr, tt.want)
			}
			if strings.Contains(out, "<") {
				t.Fatalf("something ran: %q", out)
			}
		})
	}
	// The script is honoured when the flag is spelled right.
	if code, out, stderr := runCmd(t, nil, "flows", "simulate", "clinic", "--script", script); code != exitOK || !strings.Contains(out, "< What is your name?") {
		t.Fatalf("simulate --script: exit %d\n%s%s", code, out, stderr)
	}
}

func TestFlowsValidate_NamesAFolderThatIsNotThere(t *testing.T) {
	code, _, stderr := runCmd(t, nil, "flows", "validate", "/nonexistent/flows")
	if code != exitFailure || !strings.Contains(stderr, "/nonexistent/flows") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the folder", code, stderr)
	}
}

// A failure is printed once, prefixed once, in words: no "parley: parley
// error: code=… message=…".
func TestCLI_ErrorsArePrintedOnceInWords(t *testing.T) {
	env := baseEnv(t, pgtest.DSN(t))
	code, _, stderr := runCmd(t, env, "users", "set-role", "--email", "nobody@example.org", "--role", "agent")
	if code != exitFailure || strings.Count(stderr, "parley") != 1 || !strings.HasPrefix(stderr, "parley: ") ||
		strings.Contains(stderr, "code=") || strings.Contains(stderr, "message=") {
		t.Fatalf("exit %d, stderr %q; want 1 and one plain line", code, stderr)
	}
}

// --version prints the version, as `parley version` does.
func TestCLI_VersionFlag(t *testing.T) {
	code, out, stderr := runCmd(t, nil, "--version")
	_, want, _ := runCmd(t, nil, "version")
	if code != exitOK || out != want || strings.TrimSpace(out) == "" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q; want 0 and %q", code, out, stderr, want)
	}
}
