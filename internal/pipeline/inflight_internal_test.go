package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
)

// Little's law: at 1,000 a second and 150 ms a call, about 150-200 calls
// are let out (rate × latency with headroom), under the cap; at 10 a
// second a few are.
func TestSendGate_LimitFollowsRateTimesLatency(t *testing.T) {
	for _, tt := range []struct {
		rate           float64
		max, from, to  int
		latency        time.Duration
		before, capped bool
	}{
		{rate: 1000, max: 200, from: 150, to: 200, latency: 150 * time.Millisecond},
		{rate: 1000, max: 120, from: 120, to: 120, latency: 150 * time.Millisecond},
		{rate: 80, max: 200, from: 13, to: 17, latency: 150 * time.Millisecond},
		{rate: 10, max: 200, from: inFlightFloor, to: inFlightFloor, latency: 150 * time.Millisecond},
	} {
		g := newSendGate("twilio", tt.rate, tt.max, nil)
		for range 50 {
			if err := g.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			g.release(tt.latency, nil)
		}
		if got := g.limit(); got < tt.from || got > tt.to {
			t.Errorf("rate %g, latency %s, cap %d: limit %d, want %d to %d", tt.rate, tt.latency, tt.max, got, tt.from, tt.to)
		}
	}
}

// A 429 halves the limit and pauses the calls for its Retry-After; the
// calls that pass grow it back, one per limit's worth.
func TestSendGate_ThrottleHalvesAndPausesThenGrowsBack(t *testing.T) {
	g := newSendGate("meta", 1000, 200, nil)
	for range 20 {
		_ = g.acquire(context.Background())
		g.release(150*time.Millisecond, nil)
	}
	before := g.limit()
	_ = g.acquire(context.Background())
	g.release(10*time.Millisecond, &channel.SendError{Throttled: true, Retryable: true, RetryAfter: time.Hour})
	if got := g.limit(); got != before/2 {
		t.Fatalf("after a 429 the limit is %d, want half of %d", got, before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.acquire(ctx); err == nil {
		t.Fatal("a call went during the pause the 429 asked for")
	}
	if g.inFlight != 0 {
		t.Fatalf("%d calls counted in flight after a refused wait", g.inFlight)
	}
	g.pause = time.Time{}
	for range 20000 {
		_ = g.acquire(context.Background())
		g.release(150*time.Millisecond, nil)
	}
	if got := g.limit(); got != before {
		t.Fatalf("after the calls passed again the limit is %d, want back to %d", got, before)
	}
}

// The cap holds however many wait: a call beyond it waits for one to end.
func TestSendGate_CallsBeyondTheLimitWait(t *testing.T) {
	g := newSendGate("siren", 1000, 5, nil)
	for range 5 {
		if err := g.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.acquire(ctx); err == nil {
		t.Fatal("a sixth call went with a cap of five")
	}
	done := make(chan error, 1)
	go func() { done <- g.acquire(context.Background()) }()
	g.release(100*time.Millisecond, nil) // 1,000/s × 100 ms calls for more than five: the cap holds

	if err := <-done; err != nil || g.inFlight != 5 {
		t.Fatalf("after one ended: %v, %d in flight", err, g.inFlight)
	}
}
