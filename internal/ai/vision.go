package ai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/genai"

	"github.com/parley-chat/parley/internal/engine"
)

// VisionConfig points Vision at Gemini's generateContent.
type VisionConfig struct {
	BaseURL    string // Google's unless set (PARLEY_GEMINI_BASE_URL; a fake in tests)
	APIKey     string
	Model      string // gemini-2.5-flash unless set
	Retries    int    // tries again after a rate limit or outage within one call (2 unless set)
	HTTPClient *http.Client
	Metrics    *Metrics
	Rest       time.Duration
	BreakAfter uint32
}

// Vision reads photos with Gemini: a short description for staff, and
// fields a flow asks for.
type Vision struct {
	cfg     VisionConfig
	client  *genai.Client
	breaker *gobreaker.CircuitBreaker[visionAnswer]
}

type visionAnswer struct {
	text  string
	usage Usage
}

// Usage is what one request used, for the record kept per conversation.
type Usage struct {
	Provider, Task             string
	Audio                      time.Duration
	PromptTokens, OutputTokens int64
}

const gemini = "gemini"

// maxImage is the most Gemini takes inline in one request (20 MB in all).
const maxImage = 19 << 20

// NewVision returns the vision client. The SDK's own retries are off:
// Vision retries itself, honouring Gemini's RetryInfo.
func NewVision(ctx context.Context, c VisionConfig) (*Vision, error) {
	if c.APIKey == "" {
		return nil, errors.New("ai: Gemini needs an API key")
	}
	if c.Model == "" {
		c.Model = "gemini-2.5-flash"
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	opts := genai.HTTPOptions{BaseURL: strings.TrimRight(c.BaseURL, "/"), RetryOptions: &genai.HTTPRetryOptions{Attempts: genai.Ptr[int32](1)}}
	if opts.BaseURL != "" {
		opts.BaseURL += "/"
	}
	client, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: c.APIKey, Backend: genai.BackendGeminiAPI,
		HTTPClient: boundedClient(c.HTTPClient, maxAnswer), HTTPOptions: opts})
	if err != nil {
		return nil, errors.New("ai: the Gemini client could not be made")
	}
	return &Vision{cfg: c, client: client, breaker: newBreaker[visionAnswer](gemini, c.Rest, c.BreakAfter)}, nil
}

// State tells the circuit breaker's state (closed, open, half-open).
func (v *Vision) State() string { return v.breaker.State().String() }

// Describe says in a sentence or two what a photo shows, for staff.
func (v *Vision) Describe(ctx context.Context, image []byte, contentType string) (string, Usage, error) {
	a, err := v.ask(ctx, "describe", image, contentType,
		"Describe this photo in one or two plain sentences for a support worker who cannot see it. "+
			"If it shows a document or card, say what kind and copy its key details. Do not guess beyond what is visible.", nil)
	return strings.TrimSpace(a.text), a.usage, err
}

// Extract reads the fields schema describes out of a photo; hint is what
// the contact wrote with it, if anything.
func (v *Vision) Extract(ctx context.Context, image []byte, contentType string, schema map[string]any, hint string) (engine.AIResult, Usage, error) {
	prompt := "Read the fields the schema describes from this photo only; leave out a field the photo does not show. " +
		"Give your confidence from 0 to 1 that the fields are right."
	if hint = strings.TrimSpace(hint); hint != "" {
		prompt += " The sender wrote with it: " + hint
	}
	a, err := v.ask(ctx, "extract", image, contentType, prompt, object(map[string]any{"fields": schema, "confidence": map[string]any{"type": "number"}}, "fields", "confidence"))
	if err != nil {
		return engine.AIResult{}, a.usage, err
	}
	var answer struct {
		Fields     map[string]any `json:"fields"`
		Confidence float64        `json:"confidence"`
	}
	if json.Unmarshal([]byte(a.text), &answer) != nil {
		return engine.AIResult{}, a.usage, &CallError{Provider: gemini, Reason: "the answer is not the JSON asked for"}
	}
	return engine.AIResult{Fields: answer.Fields, Confidence: answer.Confidence}, a.usage, nil
}

// ask makes one generateContent call (retried as withRetries does) through
// the breaker; schema, when set, shapes a JSON answer.
func (v *Vision) ask(ctx context.Context, task string, image []byte, contentType, prompt string, schema map[string]any) (visionAnswer, error) {
	if len(image) > maxImage {
		return visionAnswer{}, &CallError{Provider: gemini, Reason: "the photo is larger than Gemini takes inline", Permanent: true}
	}
	res, err := v.breaker.Execute(func() (visionAnswer, error) {
		return withRetries(ctx, v.cfg.Retries, func(ctx context.Context) (visionAnswer, error) {
			return v.call(ctx, image, contentType, prompt, schema)
		})
	})
	err = breakerError(gemini, err)
	v.cfg.Metrics.request(gemini, task, outcomeOf(err))
	res.usage.Provider, res.usage.Task = gemini, task
	return res, err
}

func (v *Vision) call(ctx context.Context, image []byte, contentType, prompt string, schema map[string]any) (visionAnswer, error) {
	config := &genai.GenerateContentConfig{Temperature: genai.Ptr[float32](0)}
	if schema != nil {
		config.ResponseMIMEType, config.ResponseJsonSchema = "application/json", schema
	}
	contents := []*genai.Content{genai.NewContentFromParts([]*genai.Part{
		genai.NewPartFromBytes(image, mediaType(contentType)),
		genai.NewPartFromText(prompt),
	}, genai.RoleUser)}
	resp, err := v.client.Models.GenerateContent(ctx, v.cfg.Model, contents, config)
	if err != nil {
		return visionAnswer{}, geminiError(err)
	}
	var usage Usage
	if u := resp.UsageMetadata; u != nil {
		usage.PromptTokens, usage.OutputTokens = int64(u.PromptTokenCount), int64(u.CandidatesTokenCount)
		v.cfg.Metrics.tokens(gemini, usage.PromptTokens, usage.OutputTokens)
	}
	if len(resp.Candidates) == 0 {
		if resp.PromptFeedback != nil && resp.PromptFeedback.BlockReason != "" {
			return visionAnswer{}, &CallError{Provider: gemini, Code: string(resp.PromptFeedback.BlockReason), Reason: "the photo was blocked", Permanent: true}
		}
		return visionAnswer{}, &CallError{Provider: gemini, Reason: "no answer"}
	}
	text := resp.Text() // skips thought parts
	if strings.TrimSpace(text) == "" {
		return visionAnswer{}, &CallError{Provider: gemini, Reason: "an empty answer"}
	}
	return visionAnswer{text: text, usage: usage}, nil
}

// geminiError classifies the SDK's errors by status alone: the SDK puts a
// response's body in some of its error texts.
func geminiError(err error) error {
	var apiErr genai.APIError
	if errors.As(err, &apiErr) {
		return statusError(gemini, apiErr.Code, apiErr.Status, retryDelay(apiErr.Details))
	}
	var apiErrPtr *genai.APIError
	if errors.As(err, &apiErrPtr) {
		return statusError(gemini, apiErrPtr.Code, apiErrPtr.Status, retryDelay(apiErrPtr.Details))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return transportError(gemini, err)
	}
	if errors.Is(err, errAnswerTooLarge) {
		return &CallError{Provider: gemini, Reason: "the answer was larger than Parley reads"}
	}
	if strings.Contains(err.Error(), "unmarshal") {
		return &CallError{Provider: gemini, Reason: "the answer is not the JSON expected"}
	}
	return &CallError{Provider: gemini, Reason: "could not be reached"}
}

// retryDelay reads google.rpc.RetryInfo's retryDelay ("46s") from an
// error's details.
func retryDelay(details []map[string]any) time.Duration {
	for _, d := range details {
		if t, _ := d["@type"].(string); !strings.HasSuffix(t, "google.rpc.RetryInfo") {
			continue
		}
		if s, ok := d["retryDelay"].(string); ok {
			if dur, err := time.ParseDuration(s); err == nil && dur > 0 {
				return dur
			}
		}
	}
	return 0
}

// mediaType is a content type without its parameters.
func mediaType(contentType string) string {
	base, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(base))
}
