package pipeline

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/tracing"
	"github.com/parley-chat/parley/models"
)

// Group commit: webhooks that arrive together share one transaction, so
// ingest approaches the database's commit rate instead of paying a commit
// (and a queue insert) per webhook. A batch that fails is retried one
// request at a time, so one bad message never fails the others and no
// caller is ever told "stored" for a message that is not. Every request
// carries a deadline (Config.IngestTimeout from its arrival): the batch's
// transaction ends at the earliest of them, and a request past its own is
// answered "unavailable" instead of retried, so a database that hangs
// holds no webhook past its deadline.

const (
	maxBatch = 64 // requests per transaction at most
	// committers is how many transactions are in flight at once. Two keep
	// the database busy while batches fill; more split the same requests
	// into smaller batches that each pay the round trips and the commit
	// (measured here: 2 beat 4 by a fifth at 16 webhooks in flight, and
	// matched it at 64).
	committers = 2
)

type ingestRequest struct {
	ctx   context.Context
	items []store.IngestItem // prepared by the request's own goroutine
	done  chan ingestResult
}

type ingestResult struct {
	stored int
	err    error
}

type batcher struct {
	once     sync.Once
	stopOnce sync.Once
	requests chan *ingestRequest
	quit     chan struct{}
	wg       sync.WaitGroup
	stopped  chan struct{} // closed by Stop; made on first use
	mu       sync.Mutex
}

// quitOrNil is closed once the pipeline stops.
func (b *batcher) quitOrNil() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped == nil {
		b.stopped = make(chan struct{})
	}
	return b.stopped
}

// Ingest stores inbound messages and enqueues their processing in one
// transaction (shared with other webhooks arriving at the same moment).
// When it returns nil every message is durable, or was stored before: a
// replay is acknowledged and ignored. It returns how many were new.
func (p *Pipeline) Ingest(ctx context.Context, ins []channel.Inbound) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.IngestTimeout)
	defer cancel()
	p.batch.once.Do(p.startCommitters)
	items := p.ingestItems(ins)
	if err := p.ingestor.Prepare(items); err != nil {
		return 0, err
	}
	p.metrics.ingestPending.Inc()
	defer p.metrics.ingestPending.Dec()
	req := &ingestRequest{ctx: ctx, items: items, done: make(chan ingestResult, 1)}
	select {
	case p.batch.requests <- req:
	case <-ctx.Done():
		return 0, ingestError(ctx.Err())
	case <-p.batch.quit:
		return 0, models.Errorf(models.EUNAVAILABLE, "Shutting down; try again.")
	}
	// The request is in a batch now: wait for its outcome, whatever ctx
	// does, so the answer is never a guess. The batch itself ends by the
	// request's deadline.
	r := <-req.done
	return r.stored, r.err
}

func (p *Pipeline) startCommitters() {
	p.batch.requests = make(chan *ingestRequest)
	p.batch.quit = make(chan struct{})
	for range committers {
		p.batch.wg.Add(1)
		go p.commitLoop()
	}
}

// stopCommitters ends the committers after the requests they hold.
func (p *Pipeline) stopCommitters() {
	// Never started: make Ingest refuse from now on.
	p.batch.once.Do(func() { p.batch.quit = make(chan struct{}) })
	p.batch.stopOnce.Do(func() {
		close(p.batch.quit)
		p.batch.quitOrNil() // make it, then close it
		close(p.batch.stopped)
	})
	p.batch.wg.Wait()
}

func (p *Pipeline) commitLoop() {
	defer p.batch.wg.Done()
	for {
		var first *ingestRequest
		select {
		case first = <-p.batch.requests:
		case <-p.batch.quit:
			return
		}
		batch := []*ingestRequest{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-p.batch.requests:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		p.commit(batch)
	}
}

// commit runs a batch in one transaction, or each request alone when the
// batch fails.
func (p *Pipeline) commit(batch []*ingestRequest) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- ingestResult{err: ingestError(err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	ctx, cancel := until(live)
	stored, err := p.commitTogether(ctx, live)
	cancel()
	p.countCommit(len(live), err)
	if err == nil {
		p.metrics.ingestLatency.Observe(time.Since(start).Seconds())
		for i, r := range live {
			r.done <- ingestResult{stored: stored[i]}
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- ingestResult{err: ingestError(err)}
		return
	}
	// Each alone, within its own deadline: when the database hangs, the
	// first retry uses up its time and the others, past theirs by then,
	// are answered at once.
	for _, r := range live {
		if err := r.ctx.Err(); err != nil {
			r.done <- ingestResult{err: ingestError(err)}
			continue
		}
		ctx, cancel := until([]*ingestRequest{r})
		stored, err := p.commitTogether(ctx, []*ingestRequest{r})
		cancel()
		p.countCommit(1, err)
		if err != nil {
			r.done <- ingestResult{err: ingestError(err)}
			continue
		}
		r.done <- ingestResult{stored: stored[0]}
	}
}

// countCommit records one ingest transaction of n requests: how many
// webhooks share a commit is what group commit buys, and the one figure
// that shows it working.
func (p *Pipeline) countCommit(n int, err error) {
	if err != nil {
		p.metrics.ingestCommits.WithLabelValues("failed").Inc()
		return
	}
	p.metrics.ingestCommits.WithLabelValues("committed").Inc()
	p.metrics.ingestBatch.Observe(float64(n))
}

// until returns a context that ends at the earliest of the requests'
// deadlines and at nothing else: a caller that gives up early does not
// cancel the others' transaction.
func until(reqs []*ingestRequest) (context.Context, context.CancelFunc) {
	var first time.Time
	for _, r := range reqs {
		if d, ok := r.ctx.Deadline(); ok && (first.IsZero() || d.Before(first)) {
			first = d
		}
	}
	if first.IsZero() {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), first)
}

// commitTogether stores every request's messages and enqueues their jobs in
// one transaction that ends with ctx; stored[i] counts request i's new
// messages.
func (p *Pipeline) commitTogether(ctx context.Context, reqs []*ingestRequest) ([]int, error) {
	var items []store.IngestItem
	owner := []int{}
	for i, r := range reqs {
		for _, it := range r.items {
			items = append(items, it)
			owner = append(owner, i)
		}
	}
	stored := make([]int, len(reqs))
	err := pgx.BeginFunc(ctx, p.db.Pool, func(tx pgx.Tx) error {
		clear(stored)
		results, err := p.ingestor.Write(ctx, tx, items)
		if err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		// One processing job per contact (it takes all their messages),
		// or per batchContacts of them when the commit holds several.
		var contacts []int64
		queued := map[int64]bool{}
		var trace tracing.Carrier
		for i, r := range results {
			if !r.Inserted {
				continue
			}
			stored[owner[i]]++
			for _, id := range r.MediaIDs {
				jobs = append(jobs, river.InsertManyParams{Args: MediaArgs{MediaID: id, Provider: items[i].Provider}})
			}
			if !queued[r.ContactID] {
				if contacts == nil {
					trace = tracing.Inject(reqs[owner[i]].ctx)
				}
				queued[r.ContactID] = true
				contacts = append(contacts, r.ContactID)
			}
		}
		switch {
		case len(contacts) == 1:
			jobs = append(jobs, river.InsertManyParams{Args: ProcessArgs{ContactID: contacts[0], Trace: trace}})
		case len(contacts) > 1:
			for batch := range slices.Chunk(contacts, batchContacts) {
				jobs = append(jobs, river.InsertManyParams{Args: ProcessBatchArgs{ContactIDs: batch, Trace: trace}})
			}
		}
		if len(jobs) == 0 {
			return nil
		}
		_, err = p.worker.InsertManyTx(ctx, tx, jobs)
		return err
	})
	return stored, err
}

// ingestItems is what the store writes of each inbound message.
func (p *Pipeline) ingestItems(ins []channel.Inbound) []store.IngestItem {
	items := make([]store.IngestItem, len(ins))
	for i, in := range ins {
		items[i] = store.IngestItem{From: in.From, ProfileName: in.ProfileName, Provider: in.Provider,
			ProviderMessageID: in.ProviderMessageID, Body: truncate(in.Body, maxBody), ProviderTime: in.Timestamp}
		for _, m := range in.Media {
			items[i].Media = append(items[i].Media, store.IngestMedia{Ref: m.Ref, ContentType: m.ContentType, Wait: p.waitsFor(m.ContentType),
				NotUnderstood: p.notHeardWhy(m.ContentType)})
		}
	}
	return items
}
