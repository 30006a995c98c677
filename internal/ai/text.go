// Package ai is Parley's AI layer: providers behind small interfaces, with
// time limits and errors that never carry a person's words. Text answers
// the conversation engine's classify and extract requests through an
// OpenAI-compatible chat completions endpoint (LiteLLM, or any other).
package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/sony/gobreaker/v2"

	"github.com/parley-chat/parley/internal/engine"
)

// TextConfig points Text at a chat completions endpoint.
type TextConfig struct {
	BaseURL    string // e.g. http://litellm:4000 (the /chat/completions route is added)
	APIKey     string
	Model      string
	HTTPClient *http.Client // nil: the default client
	Metrics    *Metrics     // nil: not counted
	// Rest is how long the model is left alone after failing
	// BreakAfter calls in a row (30s and 5 unless set).
	Rest       time.Duration
	BreakAfter uint32
}

// Text answers AI nodes' requests with a chat model.
type Text struct {
	client  openai.Client
	model   string
	metrics *Metrics
	breaker *gobreaker.CircuitBreaker[engine.AIResult]
}

// provider names the text model in metrics.
const provider = "llm"

// NewText returns the text model client. The client library retries a
// failed call once; longer outages are the caller's (queued) retries.
func NewText(c TextConfig) (*Text, error) {
	if c.BaseURL == "" || c.Model == "" {
		return nil, errors.New("ai: the LLM needs a base URL and a model")
	}
	opts := []option.RequestOption{option.WithBaseURL(strings.TrimRight(c.BaseURL, "/") + "/"), option.WithAPIKey(c.APIKey), option.WithMaxRetries(1)}
	if c.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(c.HTTPClient))
	}
	t := &Text{client: openai.NewClient(opts...), model: c.Model, metrics: c.Metrics, breaker: newBreaker[engine.AIResult](provider, c.Rest, c.BreakAfter)}
	return t, nil
}

// State tells the circuit breaker's state: closed (calls go through), open
// (failing: AI steps take their fallback) or half-open (trying again).
func (t *Text) State() string { return t.breaker.State().String() }

// noIntent is what the model answers when no intent fits.
const noIntent = "none"

// Answer implements the pipeline's AI: one chat completion with a JSON
// schema for the answer's shape. After repeated failures the model is not
// asked for a while: Answer fails at once, and the caller's retries and
// fallback take over.
func (t *Text) Answer(ctx context.Context, req engine.AIRequest) (engine.AIResult, error) {
	res, _, err := t.AnswerMetered(ctx, req)
	return res, err
}

// AnswerMetered is Answer, telling also the tokens the model counted.
func (t *Text) AnswerMetered(ctx context.Context, req engine.AIRequest) (engine.AIResult, Usage, error) {
	var usage Usage
	res, err := t.breaker.Execute(func() (engine.AIResult, error) { return t.answer(ctx, req, &usage) })
	err = breakerError(provider, err)
	t.metrics.request(provider, string(req.Task), outcomeOf(err))
	usage.Provider, usage.Task = provider, string(req.Task)
	return res, usage, err
}

func (t *Text) answer(ctx context.Context, req engine.AIRequest, usage *Usage) (engine.AIResult, error) {
	var instructions string
	var schema map[string]any
	switch req.Task {
	case engine.AIClassifyTask:
		instructions = fmt.Sprintf("You sort messages people send to a helpline. Decide which one of these intents the user's message expresses: %s. "+
			"If none fits, answer %q. Give your confidence from 0 to 1. The message may be in any language.", strings.Join(req.Intents, ", "), noIntent)
		schema = object(map[string]any{
			"intent":     map[string]any{"type": "string", "enum": append(slices.Clone(req.Intents), noIntent)},
			"confidence": map[string]any{"type": "number"},
		}, "intent", "confidence")
	case engine.AIExtractTask:
		instructions = "You read details out of messages people send to a helpline. Fill in the fields the schema describes from the user's message only; " +
			"leave out a field the message does not give. Give your confidence from 0 to 1 that the fields are right. The message may be in any language."
		schema = object(map[string]any{"fields": req.Schema, "confidence": map[string]any{"type": "number"}}, "fields", "confidence")
	default:
		return engine.AIResult{}, fmt.Errorf("ai: unknown task %q", req.Task)
	}
	resp, err := t.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: t.model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(instructions),
			openai.UserMessage(req.Text),
		},
		Temperature: openai.Float(0),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "parley_" + string(req.Task), Schema: schema},
		}},
	})
	if err != nil {
		return engine.AIResult{}, callError(err)
	}
	t.metrics.tokens(provider, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	usage.PromptTokens, usage.OutputTokens = resp.Usage.PromptTokens, resp.Usage.CompletionTokens
	if len(resp.Choices) == 0 {
		return engine.AIResult{}, errors.New("ai: the model returned no answer")
	}
	var answer struct {
		Intent     string         `json:"intent"`
		Fields     map[string]any `json:"fields"`
		Confidence float64        `json:"confidence"`
	}
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &answer); err != nil {
		return engine.AIResult{}, errors.New("ai: the model's answer is not the JSON asked for")
	}
	if answer.Intent == noIntent {
		answer.Intent = ""
	}
	return engine.AIResult{Intent: answer.Intent, Fields: answer.Fields, Confidence: answer.Confidence}, nil
}

func object(props map[string]any, required ...string) map[string]any {
	return map[string]any{"type": "object", "properties": props, "required": required}
}

// callError describes a failed call by status and code only: a provider's
// message may quote the person's words back.
func callError(err error) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("ai: the model answered %d %s", apiErr.StatusCode, apiErr.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("ai: %w", err)
	}
	return errors.New("ai: the model could not be reached")
}
