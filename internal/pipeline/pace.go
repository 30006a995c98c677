package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// Processing paced by sending: replies leave no faster than the providers'
// send caps, so processing that runs further ahead of them answers no one
// sooner; it only takes the CPU and database time that acknowledging
// webhooks needs, in the burst when platforms' timeouts matter most
// (measured here at 1,000 sends a second: the same 450 answered a second
// either way, webhooks acknowledged at 1,000 a second with processing
// running flat out, 2,000-2,800 with two processing jobs at a time). So
// when the replies already waiting for the send queue would take longer
// than Config.ProcessAhead to leave at their provider's rate, this
// instance processes pacedWorkers contacts' jobs at a time instead of
// Config.Workers; a job waits for its turn at most Config.ProcessHold, and
// then goes on anyway, so no job ever waits on a provider that is down.
// What it costs: the slowest provider's queue paces every contact's
// processing, and a job waiting for its turn holds one of the default
// queue's workers (timers, broadcast rounds and events share them) for
// that while.

// pacedWorkers is how many processing jobs run at once while sending is
// behind: enough to keep replies coming at any cap.
const pacedWorkers = 2

// backlogEvery is how often an instance looks at the send queue (one small
// indexed read), whatever the number of jobs asking.
const backlogEvery = 200 * time.Millisecond

// backlogCap bounds that read: a queue holding more send jobs than this is
// behind at any rate worth pacing for.
const backlogCap = 5000

type pacer struct {
	turns chan struct{} // pacedWorkers slots, taken while behind
	mu    sync.Mutex
	at    time.Time     // when the send queue was last read
	ahead time.Duration // what it held then, in time to send
	// reading is closed when the read under way ends (nil: none is):
	// the other jobs take the last value meanwhile, or wait for the first.
	reading chan struct{}
	failing bool // the last read failed (logged once, until one succeeds)
}

// sendsAhead returns how long the replies waiting in the send queue would
// take to leave at their providers' rates (the slowest provider's), read
// at most every backlogEvery. A failed read counts as none waiting (logged
// once): pacing never stops processing.
func (p *Pipeline) sendsAhead(ctx context.Context) time.Duration {
	pc := &p.pace
	pc.mu.Lock()
	if pc.reading != nil && pc.at.IsZero() {
		// The first read is under way: there is nothing older to go by.
		first := pc.reading
		pc.mu.Unlock()
		select {
		case <-first:
		case <-ctx.Done():
			return 0
		}
		pc.mu.Lock()
	}
	if pc.reading != nil || time.Since(pc.at) < backlogEvery {
		defer pc.mu.Unlock()
		return pc.ahead
	}
	reading := make(chan struct{})
	pc.reading = reading
	pc.mu.Unlock()
	ahead, err := p.readSendBacklog(ctx)
	pc.mu.Lock()
	switch {
	case err != nil && ctx.Err() != nil:
		// This job's own time ran out: the next job reads again.
	case err != nil:
		if !pc.failing {
			p.log.Warn("processing is not paced: the send queue could not be read", slog.String("error", err.Error()))
		}
		pc.ahead, pc.at, pc.failing = 0, time.Now(), true
	default:
		pc.ahead, pc.at, pc.failing = ahead, time.Now(), false
	}
	pc.reading = nil
	ahead = pc.ahead
	pc.mu.Unlock()
	close(reading)
	p.metrics.sendsAhead.Set(ahead.Seconds())
	return ahead
}

// readSendBacklog reads the send queue (store.QueuedSends) as the time
// its slowest provider needs to send what waits there. A single send names
// no provider, so it counts at PARLEY_SEND_RATE, though its provider's own
// rate may be higher.
func (p *Pipeline) readSendBacklog(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	counts, err := store.QueuedSends(ctx, p.db, queueSend, backlogCap)
	var ahead time.Duration
	for provider, n := range counts {
		ahead = max(ahead, time.Duration(float64(n)/p.cfg.rate(provider)*float64(time.Second)))
	}
	return ahead, err
}

// paceProcessing waits for a processing job's turn while sending is
// behind (see above), for at most Config.ProcessHold and a third of the
// time ctx has left, and returns what gives the turn back.
func (p *Pipeline) paceProcessing(ctx context.Context) func() {
	if p.sendsAhead(ctx) <= p.cfg.ProcessAhead {
		return func() {}
	}
	hold := p.cfg.ProcessHold
	if d, ok := ctx.Deadline(); ok {
		hold = min(hold, time.Until(d)/3)
	}
	select {
	case p.pace.turns <- struct{}{}:
		return func() { <-p.pace.turns }
	default:
	}
	p.metrics.processPaced.Inc()
	p.metrics.processWaiting.Inc()
	defer p.metrics.processWaiting.Dec()
	t := time.NewTimer(hold)
	defer t.Stop()
	select {
	case p.pace.turns <- struct{}{}:
		return func() { <-p.pace.turns }
	case <-t.C:
		return func() {} // waited long enough: on, without a turn
	case <-ctx.Done():
		return func() {}
	}
}
