package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// flowsValidate checks the flows of dir (the built-in ones when ""). A
// flow with warnings (doubtful, but it runs) is listed with them, and the
// command still succeeds: only errors fail it. With a database (dsn), the
// templates the flows name are checked against the template registry.
func flowsValidate(ctx context.Context, dir, dsn string, stdout io.Writer) error {
	lib, err := library(dir)
	if err != nil {
		return fmt.Errorf("flows are invalid:\n%w", err)
	}
	reg, note := templateRegistry(ctx, dsn)
	var problems []error
	unchecked := false
	for _, f := range lib.Flows() {
		var bad, warnings []*engine.Error
		if reg != nil && len(f.Templates()) > 0 {
			bad, warnings = engine.CheckTemplates(f, len(reg) > 0, func(name, lang string) []*models.Template { return reg[name+"\x00"+lang] })
		}
		unchecked = unchecked || (reg == nil && len(f.Templates()) > 0)
		if len(bad) > 0 {
			for _, p := range bad {
				problems = append(problems, p)
			}
			continue
		}
		fmt.Fprintf(stdout, "ok  %-20s version %s  %d nodes  (%s)\n", f.ID, f.Version, len(f.Nodes), f.File)
		for _, w := range append(slices.Clone(f.Warnings), warnings...) {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
	}
	if unchecked {
		fmt.Fprintf(stdout, "note: %s\n", note)
	}
	if len(problems) > 0 {
		return fmt.Errorf("flows are invalid:\n%w", errors.Join(problems...))
	}
	return nil
}

// templateRegistry reads the template registry by name and language, or
// says why the templates cannot be checked.
func templateRegistry(ctx context.Context, dsn string) (map[string][]*models.Template, string) {
	if dsn == "" {
		return nil, "the WhatsApp templates the flows name were not checked against the template registry: set DATABASE_URL"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		return nil, "the WhatsApp templates the flows name were not checked: the database could not be reached"
	}
	defer db.Close()
	list, err := store.NewTemplateStore(db).List(ctx)
	if err != nil {
		return nil, "the WhatsApp templates the flows name were not checked: the template registry could not be read (run `parley migrate up`?)"
	}
	reg := map[string][]*models.Template{}
	for _, t := range list {
		reg[t.Name+"\x00"+t.Language] = append(reg[t.Name+"\x00"+t.Language], t)
	}
	return reg, ""
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
	sim := simulation{region: strings.ToUpper(getenv("PARLEY_DEFAULT_REGION"))}
	if sim.text, err = newTextAI(getenv("PARLEY_LLM_BASE_URL"), getenv("PARLEY_LLM_API_KEY"), getenv("PARLEY_LLM_MODEL"), nil); err != nil {
		return err
	}
	if key := getenv("PARLEY_SARVAM_API_KEY"); key != "" {
		sim.speech = ai.NewSpeech(ai.SpeechConfig{BaseURL: getenv("PARLEY_SARVAM_BASE_URL"), APIKey: key, Model: getenv("PARLEY_SARVAM_MODEL"),
			Language: getenv("PARLEY_SARVAM_LANGUAGE")})
	}
	if key := getenv("PARLEY_GEMINI_API_KEY"); key != "" {
		if sim.vision, err = ai.NewVision(context.Background(), ai.VisionConfig{BaseURL: getenv("PARLEY_GEMINI_BASE_URL"), APIKey: key,
			Model: getenv("PARLEY_GEMINI_MODEL")}); err != nil {
			return err
		}
	}
	return sim.run(f, in, stdout)
}

// simulation is what a terminal conversation uses: the AI services that
// are configured (nil: off, and the flow takes its fallback).
type simulation struct {
	text   pipeline.AI
	speech pipeline.Speech
	vision pipeline.Vision
	region string
	images map[int64]image // photos sent so far, by the id the engine knows them by
}

type image struct {
	data        []byte
	contentType string
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

// run reads the contact's lines from in and prints the bot's replies. AI
// nodes ask the text model when one is set, and take their fallback when
// not. "/voice file.ogg" sends a voice note (transcribed when
// speech-to-text is set, else unheard) and "/image file.jpg" a photo (read
// by the vision service when set).
func (sim *simulation) run(f *engine.Flow, in io.Reader, out io.Writer) error {
	s := &engine.Session{Flow: f, Region: sim.region}
	s.AI = func(req engine.AIRequest) engine.AIResult {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var res engine.AIResult
		var err error
		switch img, ok := sim.images[req.MediaID]; {
		case req.MediaID != 0 && ok && sim.vision != nil:
			res, _, err = sim.vision.Extract(ctx, img.data, img.contentType, req.Schema, req.Text)
		case req.MediaID != 0:
			return engine.AIResult{Err: "photos are not read here (PARLEY_GEMINI_API_KEY is unset)"}
		case sim.text != nil:
			res, err = sim.text.Answer(ctx, req)
		default:
			return engine.AIResult{Err: "the AI layer is off"}
		}
		if err != nil {
			fmt.Fprintf(out, "(AI layer: %v)\n", err)
			return engine.AIResult{Err: err.Error()}
		}
		return res
	}
	fmt.Fprintf(out, "Simulating %s (version %s). Type as the contact; /voice FILE and /image FILE send a voice note or a photo; "+
		"!remind and !expire fire timeouts; Ctrl-D ends.\n", f.ID, f.Version)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(out, "> %s\n", line)
		var replies []string
		if input, ok := sim.attachment(line, out); ok {
			replies = s.Send(input)
		} else {
			replies = s.Say(line)
		}
		for _, reply := range replies {
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

// attachment reads a "/voice FILE" or "/image FILE" line as the engine
// would get the message: a voice note's transcript (or unheard), a photo
// by an id for the AI layer. ok is false for any other line.
func (sim *simulation) attachment(line string, out io.Writer) (in engine.Input, ok bool) {
	cmd, path, _ := strings.Cut(strings.TrimSpace(line), " ")
	if cmd != "/voice" && cmd != "/image" {
		return in, false
	}
	in = engine.Input{Kind: engine.InputMessage, Media: true}
	data, err := os.ReadFile(strings.TrimSpace(path))
	if err != nil {
		fmt.Fprintf(out, "(cannot read %s: %v)\n", strings.TrimSpace(path), err)
		in.Unheard = cmd == "/voice"
		return in, true
	}
	contentType := http.DetectContentType(data)
	if cmd == "/image" {
		if sim.images == nil {
			sim.images = map[int64]image{}
		}
		id := int64(len(sim.images) + 1)
		sim.images[id], in.ImageID = image{data, contentType}, id
		return in, true
	}
	if sim.speech == nil {
		fmt.Fprintln(out, "(not heard: PARLEY_SARVAM_API_KEY is unset)")
		in.Unheard = true
		return in, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if strings.HasPrefix(contentType, "application/ogg") {
		contentType = "audio/ogg"
	}
	t, err := sim.speech.Transcribe(ctx, data, contentType)
	if err != nil || strings.TrimSpace(t.Text) == "" {
		fmt.Fprintf(out, "(not heard: %v)\n", err)
		in.Unheard = true
		return in, true
	}
	fmt.Fprintf(out, "(heard, %s: %s)\n", t.Language, t.Text)
	in.Text = t.Text
	in.Language, _, _ = strings.Cut(strings.ToLower(t.Language), "-")
	return in, true
}
