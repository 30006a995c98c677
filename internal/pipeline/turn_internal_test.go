package pipeline

import (
	"testing"
	"time"
)

// A send waiting for an earlier one to the same contact checks soon at
// first, then ever less often, never more than every 2 s.
func TestTurnWait_BacksOff(t *testing.T) {
	tests := []struct {
		n        int
		retrying bool
		want     time.Duration
	}{
		{0, false, 20 * time.Millisecond},
		{1, false, 40 * time.Millisecond},
		{3, false, 160 * time.Millisecond},
		{7, false, 2 * time.Second},
		{500, false, 2 * time.Second},
		{0, true, 5 * time.Second},
	}
	for _, tt := range tests {
		if got := turnWait(tt.n, tt.retrying); got != tt.want {
			t.Errorf("turnWait(%d, %v) = %v, want %v", tt.n, tt.retrying, got, tt.want)
		}
	}
}
