// Package enginetest reads conversation transcripts, the golden files that
// the engine's tests replay against the pure engine and the pipeline's
// tests replay through the whole pipeline.
//
// A transcript is a text file: "flow: NAME" and "lang: CODE" set the scene;
// "> text" is what the contact writes; "! remind" and "! expire" are
// timeouts firing; "< text" is each reply expected, in order; "= key: value"
// is the state expected at that point (node, status, opted_out, var NAME);
// "#" starts a comment.
package enginetest

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Kinds of transcript lines.
const (
	Say     = "say"     // the contact writes Text
	Timeout = "timeout" // Text is remind or expire
	Reply   = "reply"   // the bot replies Text
	Assert  = "assert"  // state Key has Value
)

// Line is one step of a transcript.
type Line struct {
	N          int // line number
	Kind       string
	Text       string
	Key, Value string
}

// Transcript is a conversation to replay.
type Transcript struct {
	Flow, Lang string
	Lines      []Line
}

// Read parses a transcript file.
func Read(path string) (*Transcript, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	t := &Transcript{}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "flow: "):
			t.Flow = strings.TrimPrefix(line, "flow: ")
		case strings.HasPrefix(line, "lang: "):
			t.Lang = strings.TrimPrefix(line, "lang: ")
		case strings.HasPrefix(line, ">"):
			t.Lines = append(t.Lines, Line{N: n, Kind: Say, Text: strings.TrimPrefix(strings.TrimPrefix(line, ">"), " ")})
		case strings.HasPrefix(line, "!"):
			t.Lines = append(t.Lines, Line{N: n, Kind: Timeout, Text: strings.TrimSpace(strings.TrimPrefix(line, "!"))})
		case strings.HasPrefix(line, "< "):
			t.Lines = append(t.Lines, Line{N: n, Kind: Reply, Text: strings.TrimPrefix(line, "< ")})
		case strings.HasPrefix(line, "= "):
			key, value, _ := strings.Cut(strings.TrimPrefix(line, "= "), ": ")
			t.Lines = append(t.Lines, Line{N: n, Kind: Assert, Key: key, Value: value})
		default:
			return nil, fmt.Errorf("%s:%d: cannot read %q", path, n, line)
		}
	}
	return t, sc.Err()
}
