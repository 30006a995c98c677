package pipeline

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/ai"
)

// A provider's Retry-After or RetryInfo longer than the call could wait
// is honoured by the job's next try, once; other failures back off as
// usual.
func TestRetryHints_HonourTheProvidersWait(t *testing.T) {
	var h retryHints
	h.note(1, fmt.Errorf("transcribe: %w", &ai.CallError{Provider: "gemini", Status: 429, RetryAfter: 46 * time.Second}))
	h.note(2, errors.New("connection reset"))
	h.note(3, &ai.CallError{Provider: "sarvam", Status: 429, RetryAfter: time.Second})
	for _, tt := range []struct {
		job  int64
		want time.Duration
	}{{1, 46 * time.Second}, {1, 4 * time.Second}, {2, 4 * time.Second}, {3, 4 * time.Second}} {
		if got := h.after(tt.job, 4*time.Second); got != tt.want {
			t.Errorf("job %d: next try after %v, want %v", tt.job, got, tt.want)
		}
	}
}
