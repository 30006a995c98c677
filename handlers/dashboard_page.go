package handlers

import (
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/chart"
	"github.com/parley-chat/parley/views"
)

// Chart colours: the console's emerald and slate, and amber and red for
// what needs attention.
const (
	colourIn, colourOut      = "#059669", "#64748b"
	colourStarted, colourEnd = "#0284c7", "#059669"
	colourHandoff, colourBad = "#d97706", "#dc2626"
)

// register adds the dashboard's console pages.
func (d *Dashboard) register(app *fiber.App, signedIn fiber.Handler) {
	app.Get("/dashboard", signedIn, require(auth.ReadDashboard), d.page)
	app.Get("/dashboard.csv", signedIn, require(auth.ReadDashboard), d.csvReport)
}

// page shows the figures as charts, each with its table.
func (d *Dashboard) page(c *fiber.Ctx) error {
	r, err := d.report(c)
	if err != nil {
		return err
	}
	q := url.Values{"range": {r.Range}}
	if r.Range == "custom" {
		q.Set("from", r.From)
		q.Set("to", r.To)
	}
	p := views.DashboardProps{Staff: badge(c), Range: r.Range, From: r.From, To: r.To, CSV: "/dashboard.csv?" + q.Encode(),
		Totals: dayProps(r.Totals),
		Wait:   views.DashboardWait{Answered: r.Handoffs.Answered, Waiting: r.Handoffs.Waiting, Median: waitText(r.Handoffs, r.Handoffs.MedianSeconds), P90: waitText(r.Handoffs, r.Handoffs.P90Seconds)}}
	var days []string
	var in, out, started, finished, handed []float64
	for _, x := range r.Days {
		p.Days = append(p.Days, dayProps(x))
		days = append(days, x.Day[5:]) // MM-DD under the axis
		in, out = append(in, float64(x.In)), append(out, float64(x.Out))
		started, finished, handed = append(started, float64(x.Started)), append(finished, float64(x.Finished)), append(handed, float64(x.HandedOff))
	}
	p.MessagesChart = chart.Bars{Title: "Messages per day", Labels: days,
		Series: []chart.Series{{Name: "In", Colour: colourIn, Values: in}, {Name: "Out", Colour: colourOut, Values: out}}}.SVG()
	p.ConversationsChart = chart.Bars{Title: "Conversations per day", Labels: days, Series: []chart.Series{{Name: "Started", Colour: colourStarted, Values: started},
		{Name: "Finished", Colour: colourEnd, Values: finished}, {Name: "Handed off", Colour: colourHandoff, Values: handed}}}.SVG()
	var codes []string
	var failed []float64
	for _, f := range r.Failures {
		code := f.Code
		if code == "" {
			code = "none given"
		}
		p.Failures = append(p.Failures, views.DashboardCount{Key: code, Count: f.Count})
		codes, failed = append(codes, code), append(failed, float64(f.Count))
	}
	p.FailuresChart = chart.Bars{Title: "Send failures by error code", Labels: codes, Series: []chart.Series{{Name: "Failed sends", Colour: colourBad, Values: failed}}}.SVG()
	var flows []string
	var fs, ff []float64
	for _, f := range r.Flows {
		p.Flows = append(p.Flows, views.DashboardFlow{Flow: f.Flow, Started: f.Started, Finished: f.Finished, Stopped: f.Stopped})
		flows, fs, ff = append(flows, f.Flow), append(fs, float64(f.Started)), append(ff, float64(f.Finished))
	}
	p.FlowsChart = chart.Bars{Title: "Top flows: started and finished", Labels: flows,
		Series: []chart.Series{{Name: "Started", Colour: colourStarted, Values: fs}, {Name: "Finished", Colour: colourEnd, Values: ff}}}.SVG()
	return render(c, views.Dashboard(p))
}

func dayProps(x ReportDay) views.DashboardDay {
	return views.DashboardDay{Day: x.Day, In: x.In, Out: x.Out, Started: x.Started, Finished: x.Finished, HandedOff: x.HandedOff}
}

// waitText writes a wait for people ("4m 30s"), or a dash when no
// hand-off of the range was answered.
func waitText(w ReportWait, s float64) string {
	if w.Answered == 0 {
		return "–"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
