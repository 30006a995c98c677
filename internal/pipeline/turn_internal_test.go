package pipeline

import (
	"testing"
	"time"
)

// A send waiting for an earlier one to the same contact checks often
// while a chain of replies is moving, then ever less often.
func TestTurnWait_BacksOff(t *testing.T) {
	tests := []struct {
		n        time.Duration
		retrying bool
		want     time.Duration
	}{
		{0, false, 20 * time.Millisecond},
		{29 * time.Second, false, 20 * time.Millisecond},
		{30 * time.Second, false, 3 * time.Second},
		{40 * time.Second, false, 4 * time.Second},
		{2 * time.Hour, false, 5 * time.Second},
		{0, true, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := turnWait(tt.n, tt.retrying); got != tt.want {
			t.Errorf("turnWait(%d, %v) = %v, want %v", tt.n, tt.retrying, got, tt.want)
		}
	}
}
