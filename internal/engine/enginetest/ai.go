package enginetest

import (
	"strconv"
	"strings"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/textnorm"
)

// AI is a deterministic stand-in for the AI layer, for transcripts and
// tests. It classifies a text as the one intent whose name it contains
// (confidence 0.9; two or more: 0.5; none: 0.1), and extracts fields
// written as "name: value" or "name=value", separated by commas or
// semicolons (confidence 0.9). A text containing "#outage" fails as a
// provider that is down would.
func AI(req engine.AIRequest) engine.AIResult {
	if strings.Contains(req.Text, "#outage") {
		return engine.AIResult{Err: "the AI provider is unavailable"}
	}
	if req.Task == engine.AIClassifyTask {
		words := map[string]bool{}
		for _, w := range textnorm.Words(req.Text) {
			words[w] = true
		}
		var found []string
		for _, intent := range req.Intents {
			if words[strings.ToLower(intent)] {
				found = append(found, intent)
			}
		}
		switch len(found) {
		case 0:
			return engine.AIResult{Confidence: 0.1}
		case 1:
			return engine.AIResult{Intent: found[0], Confidence: 0.9}
		}
		return engine.AIResult{Intent: found[0], Confidence: 0.5}
	}
	fields := map[string]any{}
	for _, part := range strings.FieldsFunc(req.Text, func(r rune) bool { return r == ',' || r == ';' || r == '\n' }) {
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			k, v, ok = strings.Cut(part, "=")
		}
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch n, err := strconv.ParseFloat(v, 64); {
		case err == nil:
			fields[k] = n
		case v == "true" || v == "false":
			fields[k] = v == "true"
		default:
			fields[k] = v
		}
	}
	return engine.AIResult{Fields: fields, Confidence: 0.9}
}
