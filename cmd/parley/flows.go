package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
)

// flowsValidate checks the flows of dir (the built-in ones when "").
func flowsValidate(dir string, stdout io.Writer) error {
	lib, err := library(dir)
	if err != nil {
		return fmt.Errorf("flows are invalid:\n%w", err)
	}
	for _, f := range lib.Flows() {
		fmt.Fprintf(stdout, "ok  %-20s version %s  %d nodes  (%s)\n", f.ID, f.Version, len(f.Nodes), f.File)
	}
	return nil
}

// flowsSimulate talks to the flow name through the real engine: reading
// the contact's lines from script, or from the terminal when "".
func flowsSimulate(name, script string, getenv func(string) string, stdout io.Writer) error {
	f, err := findFlow(name, getenv("PARLEY_FLOWS_DIR"))
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	if script != "" {
		file, err := os.Open(script)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	textAI, err := newTextAI(getenv("PARLEY_LLM_BASE_URL"), getenv("PARLEY_LLM_API_KEY"), getenv("PARLEY_LLM_MODEL"), nil)
	if err != nil {
		return err
	}
	return simulate(f, in, stdout, textAI, strings.ToUpper(getenv("PARLEY_DEFAULT_REGION")))
}

// library loads dir, or the built-in flows when dir is "".
func library(dir string) (*engine.Library, error) {
	if dir == "" {
		return engine.Builtin(), nil
	}
	return engine.LoadDir(dir)
}

func findFlow(name, dir string) (*engine.Flow, error) {
	if data, err := os.ReadFile(name); err == nil {
		return engine.Parse(name, data)
	}
	lib, err := library(dir)
	if err != nil {
		return nil, err
	}
	if f := lib.Current(name); f != nil {
		return f, nil
	}
	return nil, usageError{fmt.Sprintf("no flow %q (give a file, or a flow id)", name)}
}

// simulate reads the contact's lines from in and prints the bot's replies.
// AI nodes ask textAI when it is set, and take their fallback when not.
func simulate(f *engine.Flow, in io.Reader, out io.Writer, textAI pipeline.AI, region string) error {
	s := &engine.Session{Flow: f, Region: region}
	if textAI != nil {
		s.AI = func(req engine.AIRequest) engine.AIResult {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := textAI.Answer(ctx, req)
			if err != nil {
				fmt.Fprintf(out, "(AI layer: %v)\n", err)
				return engine.AIResult{Err: err.Error()}
			}
			return res
		}
	}
	fmt.Fprintf(out, "Simulating %s (version %s). Type as the contact; !remind and !expire fire timeouts; Ctrl-D ends.\n", f.ID, f.Version)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(out, "> %s\n", line)
		for _, reply := range s.Say(line) {
			fmt.Fprintf(out, "< %s\n", reply)
		}
	}
	fmt.Fprintf(out, "= node %s, status %s, variables %s\n", s.State.Node, s.State.Status, formatVars(s.State.Vars))
	return sc.Err()
}

func formatVars(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + vars[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
