package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/models"
)

// DashboardStore counts what the dashboard and the flow map show. It
// reads plain columns only (directions, statuses, error codes, times, node
// ids): nothing is decrypted to count, and nothing personal is read.
type DashboardStore struct{ db *DB }

// NewDashboardStore returns the dashboard's counts over db.
func NewDashboardStore(db *DB) *DashboardStore { return &DashboardStore{db: db} }

// Day is one UTC day's counts.
type Day struct {
	Day       time.Time // its first instant, UTC
	In, Out   int64     // messages received and sent (queued for sending)
	Started   int64     // conversations started
	Finished  int64     // conversations ended (by the flow, a time-out or staff)
	HandedOff int64     // conversations the flow handed to a person
}

// Failure is how many sends failed with one provider error code ("" when
// the provider named none).
type Failure struct {
	Code string
	N    int64
}

// HandoffWait is how long hand-offs waited for a person: from the flow's
// hand-off to a person first taking it or replying.
type HandoffWait struct {
	Answered int64   // hand-offs a person took or answered
	Waiting  int64   // hand-offs nobody has taken or answered yet
	Median   float64 // seconds, over the answered (0 when none)
	P90      float64 // seconds, the 90th percentile
}

// FlowCount is, for one flow over the range, how many conversations
// started (Node "") or how many ended at Node: the caller, which knows the
// flows, tells which nodes are ends (finished) and which are not (expired
// or ended by staff there).
type FlowCount struct {
	Flow, Node     string
	Started, Ended int64
}

// Figures are the dashboard's counts over [From, To).
type Figures struct {
	From, To time.Time
	Days     []Day // every day of the range, oldest first, zeros included
	Failures []Failure
	Handoffs HandoffWait
	Flows    []FlowCount
}

// settled is how long after its end a day's counts are kept: a
// transaction that began before midnight may commit rows stamped with it
// a little after.
const settled = time.Hour

// Figures counts the range [from, to), which starts and ends at UTC
// midnights. Days settled are read from dashboard_days, counted and kept
// there the first time; the others are counted each time.
func (s *DashboardStore) Figures(ctx context.Context, from, to time.Time) (*Figures, error) {
	return s.figures(ctx, from, to, time.Now())
}

func (s *DashboardStore) figures(ctx context.Context, from, to, now time.Time) (*Figures, error) {
	f := &Figures{From: from, To: to}
	flows := flowCounts{}
	defer func() { f.Flows = flows.list() }()
	byDay := map[time.Time]*Day{}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		f.Days = append(f.Days, Day{Day: d})
	}
	for i := range f.Days {
		byDay[f.Days[i].Day] = &f.Days[i]
	}
	// Days up to closed are settled: kept once counted.
	closed := now.Add(-settled).UTC().Truncate(24 * time.Hour)
	kept, err := s.keptDays(ctx, flows, from, earlier(to, closed))
	if err != nil {
		return nil, err
	}
	var missFrom, missTo time.Time // the settled days not kept yet
	for _, d := range f.Days {
		if !d.Day.Before(closed) {
			break
		}
		if k, ok := kept[d.Day]; ok {
			*byDay[d.Day] = k
			continue
		}
		if missFrom.IsZero() {
			missFrom = d.Day
		}
		missTo = d.Day.AddDate(0, 0, 1)
	}
	if !missFrom.IsZero() {
		if err := s.countAndKeep(ctx, byDay, flows, missFrom, missTo); err != nil {
			return nil, err
		}
	}
	live := from
	if closed.After(live) {
		live = closed
	}
	b := &pgx.Batch{}
	if live.Before(to) {
		queueDays(b, byDay, flows, live, to)
	}
	// Failed sends are few (the partial index of failed outbound messages
	// finds them), and a send may fail hours later: counted each time.
	b.Queue(`SELECT error_code, count(*) FROM messages WHERE direction = 'out' AND status = 'failed' AND created_at >= $1 AND created_at < $2
		GROUP BY 1 ORDER BY 2 DESC, 1`, from, to).Query(func(rows pgx.Rows) error {
		var err error
		f.Failures, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Failure, error) {
			var x Failure
			return x, r.Scan(&x.Code, &x.N)
		})
		return err
	})
	b.Queue(`WITH h AS (SELECT extract(epoch FROM handoff_answered_at - handoff_at)::float8 AS wait FROM conversations
			WHERE handoff_at >= $1 AND handoff_at < $2)
		SELECT count(*) FILTER (WHERE wait >= 0), count(*) FILTER (WHERE wait IS NULL OR wait < 0),
			coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) FILTER (WHERE wait >= 0), 0),
			coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY wait) FILTER (WHERE wait >= 0), 0) FROM h`, from, to).QueryRow(func(r pgx.Row) error {
		return r.Scan(&f.Handoffs.Answered, &f.Handoffs.Waiting, &f.Handoffs.Median, &f.Handoffs.P90)
	})
	if err := s.db.Pool.SendBatch(ctx, b).Close(); err != nil { // one round trip
		return nil, dbError(err, "Dashboard")
	}
	return f, nil
}

// keptDays reads the days of [from, to) counted before.
func (s *DashboardStore) keptDays(ctx context.Context, flows flowCounts, from, to time.Time) (map[time.Time]Day, error) {
	kept := map[time.Time]Day{}
	if !from.Before(to) {
		return kept, nil
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT day::timestamp AT TIME ZONE 'UTC', messages_in, messages_out, started, finished, handed_off
		FROM dashboard_days WHERE day >= $1::date AND day < $2::date`, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return nil, dbError(err, "Dashboard")
	}
	days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Day, error) {
		var d Day
		return d, r.Scan(&d.Day, &d.In, &d.Out, &d.Started, &d.Finished, &d.HandedOff)
	})
	if err != nil {
		return nil, dbError(err, "Dashboard")
	}
	for _, d := range days {
		kept[d.Day.UTC()] = d
	}
	// The flows' rows of the days kept (written with them).
	rows, err = s.db.Pool.Query(ctx, `SELECT f.day::timestamp AT TIME ZONE 'UTC', f.flow_id, f.node, f.started, f.ended FROM dashboard_flow_days f
		JOIN dashboard_days d ON d.day = f.day WHERE f.day >= $1::date AND f.day < $2::date`, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return nil, dbError(err, "Dashboard")
	}
	return kept, dbError(flows.scan(rows, nil), "Dashboard")
}

// countAndKeep counts the settled days [from, to) and keeps their counts.
// Two dashboards counting the same day at once keep the same numbers.
func (s *DashboardStore) countAndKeep(ctx context.Context, byDay map[time.Time]*Day, flows flowCounts, from, to time.Time) error {
	b := &pgx.Batch{}
	perDay := flowCounts{}
	queueDays(b, byDay, perDay, from, to)
	if err := s.db.Pool.SendBatch(ctx, b).Close(); err != nil {
		return dbError(err, "Dashboard")
	}
	keep := &pgx.Batch{}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		x := byDay[d]
		if x == nil {
			continue
		}
		keep.Queue(`INSERT INTO dashboard_days (day, messages_in, messages_out, started, finished, handed_off) VALUES ($1::date, $2, $3, $4, $5, $6)
			ON CONFLICT (day) DO NOTHING`, d.Format(time.DateOnly), x.In, x.Out, x.Started, x.Finished, x.HandedOff)
	}
	for k, n := range perDay {
		flows.add(flowKey{Flow: k.Flow, Node: k.Node}, n)
		keep.Queue(`INSERT INTO dashboard_flow_days (day, flow_id, node, started, ended) VALUES ($1::date, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, k.Day.Format(time.DateOnly), k.Flow, k.Node, n.Started, n.Ended)
	}
	// One batch is one transaction: a day is kept with its flows' rows.
	return dbError(s.db.Pool.SendBatch(ctx, keep).Close(), "Dashboard")
}

// queueDays adds to b the statements that count the days [from, to) into
// byDay.
func queueDays(b *pgx.Batch, byDay map[time.Time]*Day, flows flowCounts, from, to time.Time) {
	b.Queue(`SELECT date_trunc('day', created_at, 'UTC'), count(*) FILTER (WHERE direction = 'in'), count(*) FILTER (WHERE direction = 'out')
		FROM messages WHERE created_at >= $1 AND created_at < $2 GROUP BY 1`, from, to).Query(func(rows pgx.Rows) error {
		return eachDay(rows, byDay, func(d *Day, a, b int64) { d.In, d.Out = a, b })
	})
	b.Queue(`SELECT date_trunc('day', started_at, 'UTC'), count(*), 0 FROM conversations WHERE started_at >= $1 AND started_at < $2 GROUP BY 1`,
		from, to).Query(func(rows pgx.Rows) error {
		return eachDay(rows, byDay, func(d *Day, a, _ int64) { d.Started = a })
	})
	b.Queue(`SELECT date_trunc('day', ended_at, 'UTC'), count(*), 0 FROM conversations
		WHERE ended_at >= $1 AND ended_at < $2 AND status = 'ended' GROUP BY 1`, from, to).Query(func(rows pgx.Rows) error {
		return eachDay(rows, byDay, func(d *Day, a, _ int64) { d.Finished = a })
	})
	b.Queue(`SELECT date_trunc('day', handoff_at, 'UTC'), count(*), 0 FROM conversations WHERE handoff_at >= $1 AND handoff_at < $2 GROUP BY 1`,
		from, to).Query(func(rows pgx.Rows) error {
		return eachDay(rows, byDay, func(d *Day, a, _ int64) { d.HandedOff = a })
	})
	b.Queue(`SELECT date_trunc('day', started_at, 'UTC'), flow_id, '', count(*), 0 FROM conversations
			WHERE started_at >= $1 AND started_at < $2 GROUP BY 1, 2
		UNION ALL SELECT date_trunc('day', ended_at, 'UTC'), flow_id, node, 0, count(*) FROM conversations
			WHERE ended_at >= $1 AND ended_at < $2 AND status = 'ended' GROUP BY 1, 2, 3`, from, to).Query(func(rows pgx.Rows) error {
		return flows.scan(rows, byDay)
	})
}

// flowKey names one row of a flow's counts (Day zero: summed over days).
type flowKey struct {
	Day        time.Time
	Flow, Node string
}

// flowCounts sums FlowCounts by key.
type flowCounts map[flowKey]FlowCount

func (fc flowCounts) add(k flowKey, n FlowCount) {
	x := fc[k]
	x.Flow, x.Node = k.Flow, k.Node
	x.Started += n.Started
	x.Ended += n.Ended
	fc[k] = x
}

// scan adds rows (day, flow, node, started, ended): by day when byDay
// is given (a count to keep), over days otherwise.
func (fc flowCounts) scan(rows pgx.Rows, byDay map[time.Time]*Day) error {
	for rows.Next() {
		var k flowKey
		var n FlowCount
		if err := rows.Scan(&k.Day, &k.Flow, &k.Node, &n.Started, &n.Ended); err != nil {
			return err
		}
		k.Day = k.Day.UTC()
		if byDay == nil {
			k.Day = time.Time{}
		}
		fc.add(k, n)
	}
	return rows.Err()
}

// list is the counts summed over days, by flow then node.
func (fc flowCounts) list() []FlowCount {
	sum := flowCounts{}
	for k, n := range fc {
		sum.add(flowKey{Flow: k.Flow, Node: k.Node}, n)
	}
	out := make([]FlowCount, 0, len(sum))
	for _, n := range sum {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b FlowCount) int { return cmp.Or(cmp.Compare(a.Flow, b.Flow), cmp.Compare(a.Node, b.Node)) })
	return out
}

// earlier is the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// eachDay adds each row (day, a, b) to its day of the range.
func eachDay(rows pgx.Rows, byDay map[time.Time]*Day, add func(d *Day, a, b int64)) error {
	for rows.Next() {
		var day time.Time
		var a, b int64
		if err := rows.Scan(&day, &a, &b); err != nil {
			return err
		}
		if d := byDay[day.UTC()]; d != nil {
			add(d, a, b)
		}
	}
	return rows.Err()
}

// NodeCount is how many conversations reached a node, and how many of
// them are (or ended) there rather than gone on.
type NodeCount struct {
	Node    string
	Reached int64
	Stayed  int64 // reached it and are there now, waiting or ended there
}

// Funnel counts, for the conversations of flow started in [from, to), how
// many reached each node and how many stayed there.
func (s *DashboardStore) Funnel(ctx context.Context, flow string, from, to time.Time) ([]NodeCount, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT n, count(*), count(*) FILTER (WHERE c.node = n)
		FROM conversations c CROSS JOIN LATERAL jsonb_array_elements_text(c.nodes_visited) AS n
		WHERE c.started_at >= $2 AND c.started_at < $3 AND c.flow_id = $1 GROUP BY n ORDER BY n`, flow, from, to)
	if err != nil {
		return nil, dbError(err, "Funnel")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeCount, error) {
		var x NodeCount
		return x, r.Scan(&x.Node, &x.Reached, &x.Stayed)
	})
	return out, dbError(err, "Funnel")
}

// Position is where one contact's latest conversation stands in its flow.
type Position struct {
	ConversationID int64
	Flow, Node     string
	Status         models.ConversationStatus
}

// PositionOf returns where the contact's latest conversation stands
// (ENOTFOUND when they have none). Node ids only: nothing personal.
func (s *DashboardStore) PositionOf(ctx context.Context, contactID int64) (*Position, error) {
	var p Position
	err := s.db.Pool.QueryRow(ctx, `SELECT id, flow_id, node, status FROM conversations WHERE contact_id = $1
		ORDER BY started_at DESC, id DESC LIMIT 1`, contactID).Scan(&p.ConversationID, &p.Flow, &p.Node, &p.Status)
	if err == pgx.ErrNoRows {
		return nil, models.Errorf(models.ENOTFOUND, "This contact has no conversation.")
	}
	if err != nil {
		return nil, dbError(err, "Conversation")
	}
	return &p, nil
}
