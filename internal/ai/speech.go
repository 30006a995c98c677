package ai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// SpeechConfig points Speech at Sarvam's speech-to-text REST API.
type SpeechConfig struct {
	BaseURL  string // https://api.sarvam.ai unless set (a fake in tests)
	APIKey   string
	Model    string // saaras:v3 unless set
	Mode     string // for saaras models: transcribe unless set
	Language string // BCP-47 (hi-IN, en-IN, …) or unknown to detect (the default)
	// MaxPart is the longest audio sent in one call: Sarvam's REST API
	// takes at most 30 s, so longer Ogg/Opus notes go in parts of 25 s.
	MaxPart    time.Duration
	Retries    int // tries again after a rate limit or outage within one call (2 unless set)
	HTTPClient *http.Client
	Metrics    *Metrics
	Rest       time.Duration // breaker: rest after BreakAfter failures in a row (30s, 5)
	BreakAfter uint32
}

// Speech turns voice notes into text with Sarvam.
type Speech struct {
	cfg     SpeechConfig
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[Transcript]
}

// Transcript is what was said, in the language it was said in.
type Transcript struct {
	Text     string
	Language string        // BCP-47 as the service detected it, e.g. hi-IN; "" when it did not say
	Audio    time.Duration // how long the audio was (usage)
}

const sarvam = "sarvam"

// NewSpeech returns the speech client.
func NewSpeech(c SpeechConfig) *Speech {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.sarvam.ai"
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Model == "" {
		c.Model = "saaras:v3"
	}
	if c.Mode == "" {
		c.Mode = "transcribe"
	}
	if c.Language == "" {
		c.Language = "unknown"
	}
	if c.MaxPart <= 0 || c.MaxPart > 29*time.Second {
		c.MaxPart = 25 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	return &Speech{cfg: c, http: boundedClient(c.HTTPClient, maxAnswer), breaker: newBreaker[Transcript](sarvam, c.Rest, c.BreakAfter)}
}

// State tells the circuit breaker's state (closed, open, half-open).
func (s *Speech) State() string { return s.breaker.State().String() }

// partsAtOnce is how many parts of one long note are transcribed at once.
const partsAtOnce = 3

// Transcribe returns what the audio says. Ogg/Opus longer than MaxPart is
// cut into parts (never re-encoded), transcribed side by side and joined;
// other formats go whole, and the service refuses one that is too long.
// After repeated failures the service is left alone for a while and
// Transcribe fails at once.
func (s *Speech) Transcribe(ctx context.Context, audio []byte, contentType string) (Transcript, error) {
	res, err := s.breaker.Execute(func() (Transcript, error) { return s.transcribe(ctx, audio, contentType) })
	err = breakerError(sarvam, err)
	s.cfg.Metrics.request(sarvam, "transcribe", outcomeOf(err))
	if err == nil {
		s.cfg.Metrics.audio(sarvam, res.Audio)
	}
	return res, err
}

func (s *Speech) transcribe(ctx context.Context, audio []byte, contentType string) (Transcript, error) {
	parts := [][]byte{audio}
	var length time.Duration
	if d, err := OpusDuration(audio); err == nil {
		length = d
		if parts, err = SplitOpus(audio, s.cfg.MaxPart); err != nil {
			return Transcript{}, &CallError{Provider: sarvam, Reason: "the voice note could not be cut into parts", Permanent: true}
		}
	}
	out := make([]Transcript, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	slots := make(chan struct{}, partsAtOnce)
	for i, p := range parts {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			out[i], errs[i] = withRetries(ctx, s.cfg.Retries, func(ctx context.Context) (Transcript, error) { return s.call(ctx, p, contentType) })
		}()
	}
	wg.Wait()
	var texts []string
	res := Transcript{Audio: length}
	for i := range parts {
		if errs[i] != nil {
			return Transcript{}, errs[i] // a part missing would change what was said
		}
		if t := strings.TrimSpace(out[i].Text); t != "" {
			texts = append(texts, t)
		}
		if res.Language == "" {
			res.Language = out[i].Language
		}
	}
	res.Text = strings.Join(texts, " ")
	return res, nil
}

// call sends one part: multipart form, api-subscription-key.
func (s *Speech) call(ctx context.Context, audio []byte, contentType string) (Transcript, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	base, _, _ := mime.ParseMediaType(contentType)
	if base == "" || !strings.HasPrefix(base, "audio/") {
		base = "application/octet-stream"
	}
	h.Set("Content-Disposition", `form-data; name="file"; filename="voice`+extension(base)+`"`)
	h.Set("Content-Type", base)
	fw, _ := w.CreatePart(h)
	_, _ = fw.Write(audio)
	_ = w.WriteField("model", s.cfg.Model)
	if strings.HasPrefix(s.cfg.Model, "saaras") {
		_ = w.WriteField("mode", s.cfg.Mode)
	}
	_ = w.WriteField("language_code", s.cfg.Language)
	_ = w.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.BaseURL+"/speech-to-text", &body)
	if err != nil {
		return Transcript{}, &CallError{Provider: sarvam, Reason: "bad base URL", Permanent: true}
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("api-subscription-key", s.cfg.APIKey)
	resp, err := s.http.Do(req)
	if err != nil {
		return Transcript{}, transportError(sarvam, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Transcript{}, transportError(sarvam, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return Transcript{}, statusError(sarvam, resp.StatusCode, e.Error.Code, retryAfterHeader(resp.Header))
	}
	var ok struct {
		Transcript   *string `json:"transcript"`
		LanguageCode *string `json:"language_code"`
	}
	if json.Unmarshal(raw, &ok) != nil || ok.Transcript == nil {
		return Transcript{}, &CallError{Provider: sarvam, Status: resp.StatusCode, Reason: "the answer is not the JSON expected"}
	}
	t := Transcript{Text: *ok.Transcript}
	if ok.LanguageCode != nil {
		t.Language = *ok.LanguageCode
	}
	return t, nil
}

// extension names an upload by its type, as services that look at file
// names expect.
func extension(contentType string) string {
	switch contentType {
	case "audio/ogg", "audio/opus":
		return ".ogg"
	case "audio/mpeg":
		return ".mp3"
	case "audio/wav", "audio/x-wav":
		return ".wav"
	case "audio/aac":
		return ".aac"
	case "audio/amr":
		return ".amr"
	case "audio/mp4", "audio/m4a", "audio/x-m4a":
		return ".m4a"
	case "audio/webm":
		return ".webm"
	case "audio/flac":
		return ".flac"
	}
	return ""
}

// outcomeOf names a call's outcome in metrics.
func outcomeOf(err error) string {
	var ce *CallError
	switch {
	case err == nil:
		return "answered"
	case errors.As(err, &ce) && strings.HasPrefix(ce.Reason, "failed repeatedly"):
		return "resting"
	}
	return "failed"
}
