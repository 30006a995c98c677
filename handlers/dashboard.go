package handlers

import (
	"bytes"
	"context"
	"encoding/csv"
	"sort"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// DashboardReader counts what the dashboard and the flow map show
// (store.DashboardStore): counts and node ids only, nothing personal.
type DashboardReader interface {
	Figures(ctx context.Context, from, to time.Time) (*store.Figures, error)
	Funnel(ctx context.Context, flow string, from, to time.Time) ([]store.NodeCount, error)
	// PositionOf returns ENOTFOUND when the contact has no conversation.
	PositionOf(ctx context.Context, contactID int64) (*store.Position, error)
}

// Dashboard is the supervisors' view of how things are going, and the
// counts on the flow map. Reading it reads no personal data: no per-read
// audit (the flow map with a contact's node is audited as a read of them).
type Dashboard struct {
	Counts DashboardReader
	// Flows lists the flows running, to tell a flow's end nodes.
	Flows interface{ Flows() []*engine.Flow }
	Now   func() time.Time // time.Now unless set (tests)
}

// topFlows is how many flows the dashboard compares.
const topFlows = 5

// maxRangeDays bounds a custom range.
const maxRangeDays = 366

// Report is the dashboard's figures as the API answers them.
type Report struct {
	Range    string         `json:"range"` // today, 7d, 30d or custom
	From     string         `json:"from"`  // first day, YYYY-MM-DD (UTC)
	To       string         `json:"to"`    // last day, included
	Days     []ReportDay    `json:"days"`
	Totals   ReportDay      `json:"totals"`
	Handoffs ReportWait     `json:"handoff_wait"`
	Failures []ReportFailed `json:"send_failures"`
	Flows    []ReportFlow   `json:"flows"`
}

// ReportDay is one day's counts (or the range's, in Totals).
type ReportDay struct {
	Day       string `json:"day,omitempty"`
	In        int64  `json:"messages_in"`
	Out       int64  `json:"messages_out"`
	Started   int64  `json:"conversations_started"`
	Finished  int64  `json:"conversations_finished"`
	HandedOff int64  `json:"conversations_handed_off"`
}

// ReportWait is how long hand-offs of the range waited for a person.
type ReportWait struct {
	Answered      int64   `json:"answered"`
	Waiting       int64   `json:"waiting"`
	MedianSeconds float64 `json:"median_seconds"`
	P90Seconds    float64 `json:"p90_seconds"`
}

// ReportFailed is the sends that failed with one error code.
type ReportFailed struct {
	Code  string `json:"code"` // the provider's, "" when it named none
	Count int64  `json:"count"`
}

// ReportFlow is one flow's completion over the range.
type ReportFlow struct {
	Flow     string `json:"flow"`
	Started  int64  `json:"started"`
	Finished int64  `json:"finished"` // ended at one of its end nodes
	Stopped  int64  `json:"stopped"`  // ended elsewhere: timed out or ended by staff
}

// rangeOf reads ?range=today|7d|30d|custom (&from=&to=, days included) as
// [from, to) between UTC midnights; 7 days unless given.
func rangeOf(c *fiber.Ctx, now time.Time) (name string, from, to time.Time, err error) {
	today := now.UTC().Truncate(24 * time.Hour)
	name = c.Query("range", "7d")
	switch name {
	case "today":
		return name, today, today.AddDate(0, 0, 1), nil
	case "7d":
		return name, today.AddDate(0, 0, -6), today.AddDate(0, 0, 1), nil
	case "30d":
		return name, today.AddDate(0, 0, -29), today.AddDate(0, 0, 1), nil
	case "custom":
		from, to, err = dayBounds(c.Query("from"), c.Query("to"))
		switch {
		case err != nil:
			return name, from, to, err
		case from.IsZero() || to.IsZero():
			return name, from, to, models.Errorf(models.EINVALID, "A custom range needs both days: from and to.")
		case !from.Before(to):
			return name, from, to, models.Errorf(models.EINVALID, "The range ends before it starts.")
		case to.Sub(from) > maxRangeDays*24*time.Hour:
			return name, from, to, models.Errorf(models.EINVALID, "A range may span at most %d days.", maxRangeDays)
		}
		return name, from, to, nil
	}
	return name, from, to, models.Errorf(models.EINVALID, "The range is today, 7d, 30d or custom.")
}

func (d *Dashboard) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// report counts the range the request asks for.
func (d *Dashboard) report(c *fiber.Ctx) (*Report, error) {
	name, from, to, err := rangeOf(c, d.now())
	if err != nil {
		return nil, err
	}
	f, err := d.Counts.Figures(c.UserContext(), from, to)
	if err != nil {
		return nil, err
	}
	r := &Report{Range: name, From: from.Format(time.DateOnly), To: to.AddDate(0, 0, -1).Format(time.DateOnly),
		Days: []ReportDay{}, Failures: []ReportFailed{}, Flows: []ReportFlow{}}
	for _, x := range f.Days {
		day := ReportDay{Day: x.Day.Format(time.DateOnly), In: x.In, Out: x.Out, Started: x.Started, Finished: x.Finished, HandedOff: x.HandedOff}
		r.Days = append(r.Days, day)
		r.Totals.In += x.In
		r.Totals.Out += x.Out
		r.Totals.Started += x.Started
		r.Totals.Finished += x.Finished
		r.Totals.HandedOff += x.HandedOff
	}
	r.Handoffs = ReportWait{Answered: f.Handoffs.Answered, Waiting: f.Handoffs.Waiting, MedianSeconds: f.Handoffs.Median, P90Seconds: f.Handoffs.P90}
	for _, x := range f.Failures {
		r.Failures = append(r.Failures, ReportFailed{Code: x.Code, Count: x.N})
	}
	r.Flows = d.flowsOf(f.Flows)
	return r, nil
}

// flowsOf sums each flow's counts: a conversation ended at one of the
// flow's end nodes finished it; ended anywhere else, it stopped.
func (d *Dashboard) flowsOf(counts []store.FlowCount) []ReportFlow {
	ends := map[string]map[string]bool{}
	if d.Flows != nil {
		for _, f := range d.Flows.Flows() {
			ends[f.ID] = map[string]bool{}
			for id, n := range f.Nodes {
				if n.End != nil {
					ends[f.ID][id] = true
				}
			}
		}
	}
	byFlow := map[string]*ReportFlow{}
	for _, x := range counts {
		r := byFlow[x.Flow]
		if r == nil {
			r = &ReportFlow{Flow: x.Flow}
			byFlow[x.Flow] = r
		}
		r.Started += x.Started
		if ends[x.Flow][x.Node] {
			r.Finished += x.Ended
		} else {
			r.Stopped += x.Ended
		}
	}
	out := []ReportFlow{}
	for _, r := range byFlow {
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Started != out[j].Started {
			return out[i].Started > out[j].Started
		}
		return out[i].Flow < out[j].Flow
	})
	if len(out) > topFlows {
		out = out[:topFlows]
	}
	return out
}

// csvOf writes the report as one figure a row: figure, key, value (the
// key is a day, an error code or a flow; empty for a single figure).
func csvOf(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	rows := [][]string{{"figure", "key", "value"}, {"range", r.Range, ""}, {"from", "", r.From}, {"to", "", r.To}}
	for _, d := range r.Days {
		rows = append(rows, []string{"messages_in", d.Day, i(d.In)}, []string{"messages_out", d.Day, i(d.Out)},
			[]string{"conversations_started", d.Day, i(d.Started)}, []string{"conversations_finished", d.Day, i(d.Finished)},
			[]string{"conversations_handed_off", d.Day, i(d.HandedOff)})
	}
	t := r.Totals
	rows = append(rows, []string{"messages_in", "total", i(t.In)}, []string{"messages_out", "total", i(t.Out)},
		[]string{"conversations_started", "total", i(t.Started)}, []string{"conversations_finished", "total", i(t.Finished)},
		[]string{"conversations_handed_off", "total", i(t.HandedOff)},
		[]string{"handoffs_answered", "", i(r.Handoffs.Answered)}, []string{"handoffs_waiting", "", i(r.Handoffs.Waiting)},
		[]string{"handoff_wait_median_seconds", "", seconds(r.Handoffs.MedianSeconds)},
		[]string{"handoff_wait_p90_seconds", "", seconds(r.Handoffs.P90Seconds)})
	for _, f := range r.Failures {
		rows = append(rows, []string{"send_failures", f.Code, i(f.Count)})
	}
	for _, f := range r.Flows {
		rows = append(rows, []string{"flow_started", f.Flow, i(f.Started)}, []string{"flow_finished", f.Flow, i(f.Finished)},
			[]string{"flow_stopped", f.Flow, i(f.Stopped)})
	}
	for _, row := range rows {
		for k, cell := range row { // a cell a spreadsheet would run as a formula is quoted as text
			if cell != "" && (cell[0] == '=' || cell[0] == '+' || cell[0] == '@') {
				row[k] = "'" + cell
			}
		}
	}
	if err := w.WriteAll(rows); err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "The figures cannot be written as CSV.")
	}
	return buf.Bytes(), nil
}

// seconds prints a number of seconds as short as it reads exactly.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

// apiReport answers the figures as JSON.
func (d *Dashboard) apiReport(c *fiber.Ctx) error {
	r, err := d.report(c)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

// csvReport answers the figures as a CSV download.
func (d *Dashboard) csvReport(c *fiber.Ctx) error {
	r, err := d.report(c)
	if err != nil {
		return err
	}
	body, err := csvOf(r)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="parley-dashboard-`+r.From+`-`+r.To+`.csv"`)
	return c.Send(body)
}

// registerAPI adds the dashboard's API routes under /api/v1, after the
// group whose bearer check guards every route there.
func (d *Dashboard) registerAPI(app *fiber.App) {
	app.Get("/api/v1/dashboard", require(auth.ReadDashboard), d.apiReport)
	app.Get("/api/v1/dashboard.csv", require(auth.ReadDashboard), d.csvReport)
}
