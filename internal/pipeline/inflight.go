package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/channel"
)

// Provider calls in flight are sized by the send rate and the provider's
// latency, not by a worker count (Little's law: in flight = rate ×
// latency). Each provider has a gate in this instance that lets a call go
// while fewer than its limit are out: the rate times an average of the
// latencies seen (an EWMA), with headroom, never above the configured cap
// and never above a ceiling the provider's rate limits lower (AIMD:
// halved on a 429, grown back by one per limit's worth of calls that
// pass). The rate itself is held across instances by the send slots
// (store.SendSlots); the gate only keeps enough calls out to reach it.

// Tuning of the gates.
const (
	// inFlightHeadroom is how far above rate × latency the limit sits, so
	// that latency jitter does not leave slots unused.
	inFlightHeadroom = 1.25
	// inFlightFloor is the least limit (when the cap allows it): a rate
	// and latency so low that one call would do still lets a few contacts
	// go side by side.
	inFlightFloor = 4
	// latencyWeight is the weight of each new latency in the average.
	latencyWeight = 0.1
	// throttlePause is how long a provider's calls pause after a 429 that
	// named no Retry-After.
	throttlePause = time.Second
	// maxThrottlePause bounds a Retry-After taken from a provider.
	maxThrottlePause = time.Minute
)

// sendGate bounds one provider's calls in flight from this instance.
type sendGate struct {
	provider string
	rate     float64 // messages a second the provider is allowed
	max      int     // the configured cap

	mu       sync.Mutex
	inFlight int
	latency  float64 // seconds, averaged; 0 until a call has returned
	ceiling  float64 // what the provider's 429s leave of max
	pause    time.Time
	wake     chan struct{} // closed when a call returns or a pause ends
	metrics  *Metrics
}

func newSendGate(provider string, rate float64, max int, m *Metrics) *sendGate {
	g := &sendGate{provider: provider, rate: rate, max: max, ceiling: float64(max), wake: make(chan struct{}), metrics: m}
	g.report()
	return g
}

// limit is how many calls may be out now (mu held).
func (g *sendGate) limit() int {
	want := float64(g.max)
	if g.latency > 0 {
		want = math.Ceil(g.rate*g.latency*inFlightHeadroom) + 1
	}
	want = max(want, float64(inFlightFloor))
	return max(1, int(min(want, g.ceiling, float64(g.max))))
}

// report sets the gauges (mu held or not yet shared).
func (g *sendGate) report() {
	if g.metrics == nil {
		return
	}
	g.metrics.inFlight.WithLabelValues(g.provider).Set(float64(g.inFlight))
	g.metrics.inFlightLimit.WithLabelValues(g.provider).Set(float64(g.limit()))
}

// acquire waits until a call may go, or ctx ends (its error).
func (g *sendGate) acquire(ctx context.Context) error {
	for {
		g.mu.Lock()
		wake := g.wake
		if wait := time.Until(g.pause); wait > 0 {
			g.mu.Unlock()
			if err := sleep(ctx, wait); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			g.mu.Unlock()
			return err
		}
		if g.inFlight < g.limit() {
			g.inFlight++
			g.report()
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// release ends a call that took took and ended with err. A refusal for
// the provider's rate (a 429 or its like) halves the ceiling and pauses
// the calls for its Retry-After; a success counts toward the average
// latency and grows the ceiling back.
func (g *sendGate) release(took time.Duration, err error) {
	se := channel.AsSendError(err)
	throttled := se != nil && se.Throttled
	var retryAfter time.Duration
	if throttled {
		retryAfter = se.RetryAfter
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if throttled {
		// Multiplicative decrease, from what was out when it came.
		g.ceiling = max(1, min(g.ceiling, float64(g.limit()))/2)
		pause := retryAfter
		if pause <= 0 {
			pause = throttlePause
		}
		g.pause = time.Now().Add(min(pause, maxThrottlePause))
		if g.metrics != nil {
			g.metrics.throttled.WithLabelValues(g.provider).Inc()
		}
	} else if err == nil {
		s := took.Seconds()
		if g.latency == 0 {
			g.latency = s
		} else {
			g.latency += latencyWeight * (s - g.latency)
		}
		// Additive increase: one more per ceiling's worth of calls.
		g.ceiling = min(float64(g.max), g.ceiling+1/g.ceiling)
	}
	g.report()
	close(g.wake)
	g.wake = make(chan struct{})
}

// errNotCalled says the gate did not let a call go before its context
// ended: the platform was not called.
var errNotCalled = errors.New("no send call could go before the time limit")

// call sends out through sender once the provider's gate lets it go, and
// tells the gate how it went.
func (p *Pipeline) call(ctx context.Context, sender channel.Sender, provider string, out channel.Outbound) (string, error) {
	g := p.gate(provider)
	if err := g.acquire(ctx); err != nil {
		return "", fmt.Errorf("%w: %w", errNotCalled, err)
	}
	start := time.Now()
	id, err := sender.Send(ctx, out)
	g.release(time.Since(start), err)
	return id, err
}

// gates holds a gate per provider, made on first use.
type gates struct {
	mu sync.Mutex
	by map[string]*sendGate
}

// gate returns the provider's gate.
func (p *Pipeline) gate(provider string) *sendGate {
	p.gates.mu.Lock()
	defer p.gates.mu.Unlock()
	g := p.gates.by[provider]
	if g == nil {
		if p.gates.by == nil {
			p.gates.by = map[string]*sendGate{}
		}
		g = newSendGate(provider, p.cfg.rate(provider), p.cfg.SendMaxInFlight, p.metrics)
		p.gates.by[provider] = g
	}
	return g
}
