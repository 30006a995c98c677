package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// dockerfile is what the tests read of the Dockerfile.
type dockerfile struct {
	froms                 []string
	build                 []string // the go build, as arguments
	user, entrypoint, cmd string
	copiesBinary          bool
}

func readDockerfile() (*dockerfile, error) {
	f, err := os.Open(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &dockerfile{}
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		word, rest, _ := strings.Cut(strings.TrimSpace(lines.Text()), " ")
		switch strings.ToUpper(word) {
		case "FROM":
			d.froms = append(d.froms, rest)
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.build = splitShell(rest)
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = rest
		case "CMD":
			d.cmd = rest
		case "COPY":
			d.copiesBinary = d.copiesBinary || strings.HasPrefix(rest, "--from=build /out/parley /parley")
		}
	}
	return d, lines.Err()
}

// splitShell splits a command line as a shell would, for the plain words
// and double quotes a RUN line here holds.
func splitShell(s string) []string {
	var out []string
	var word strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				out, inWord = append(out, word.String()), false
				word.Reset()
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, word.String())
	}
	return out
}

// builtDir holds the binary buildParley built, once it has.
var builtDir string

// removeBuilt removes the binary buildParley built, when the tests are
// over: each test process builds its own.
func removeBuilt() {
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// buildParley builds the real binary once per test process, by the
// Dockerfile's own go build: what the crash, shutdown and two-instance
// tests run is what the image holds.
var buildParley = sync.OnceValues(func() (string, error) {
	d, err := readDockerfile()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "parley-bin-")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "parley")
	var env []string
	var argv []string
	for _, a := range d.build {
		switch {
		case len(argv) == 0 && strings.Contains(a, "="):
			env = append(env, a) // CGO_ENABLED=0
		case a == "/out/parley":
			argv = append(argv, bin)
		case a == "./cmd/parley":
			argv = append(argv, ".")
		default:
			argv = append(argv, strings.ReplaceAll(a, "${VERSION}", "test"))
		}
	}
	if len(argv) < 2 || argv[0] != "go" || argv[1] != "build" {
		return "", fmt.Errorf("the Dockerfile's build %q is not a go build", d.build)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(os.Environ(), env...)
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return bin, nil
})

// The Dockerfile cannot be built here (no Docker engine), so this checks
// it as far as it can: two stages, the last distroless or scratch, a
// non-root user, the binary as entrypoint serving by default, and the very
// go build it runs succeeds here and gives a static binary.
func TestDockerfile_BuildsAStaticNonRootImage(t *testing.T) {
	d, err := readDockerfile()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.froms) < 2 || !strings.HasSuffix(d.froms[0], " AS build") {
		t.Fatalf("stages %q: want a build stage and a runtime stage", d.froms)
	}
	if last := d.froms[len(d.froms)-1]; !strings.HasPrefix(last, "gcr.io/distroless/static") && last != "scratch" {
		t.Errorf("runtime stage %q: want distroless static or scratch", last)
	}
	if d.user == "" || strings.HasPrefix(d.user, "root") || strings.HasPrefix(d.user, "0") {
		t.Errorf("USER %q: want a non-root user", d.user)
	}
	if !d.copiesBinary || d.entrypoint != `["/parley"]` || d.cmd != `["serve"]` {
		t.Errorf("copied %v, ENTRYPOINT %s, CMD %s: want the binary, serving by default", d.copiesBinary, d.entrypoint, d.cmd)
	}
	if len(d.build) == 0 || d.build[0] != "CGO_ENABLED=0" {
		t.Fatalf("the build %q: want CGO_ENABLED=0 go build", d.build)
	}
	bin, err := buildParley()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary needs a dynamic loader: distroless static has none")
		}
	}
	if v, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(v), "test") {
		t.Fatalf("the built binary's version: %q %v", v, err)
	}
}
