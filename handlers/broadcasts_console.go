package handlers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// register adds the console's broadcast pages.
func (b *Broadcasts) register(app *fiber.App, signedIn fiber.Handler) {
	may := require(auth.Broadcast)
	app.Get("/broadcasts", signedIn, may, b.list())
	app.Post("/broadcasts", signedIn, may, b.plan())
	app.Get("/broadcasts/:id<int>", signedIn, may, b.page())
	app.Get("/broadcasts/:id<int>/progress", signedIn, may, b.progress())
	for _, action := range []string{"confirm", "pause", "resume", "cancel"} {
		app.Post("/broadcasts/:id<int>/"+action, signedIn, may, b.consoleChange(action))
	}
}

func (b *Broadcasts) list() fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := b.Actions.Broadcasts(c.UserContext(), actorOf(c), apiPage)
		if err != nil {
			return err
		}
		p := views.BroadcastsProps{Staff: badge(c), Zone: b.zone().String()}
		for _, bc := range list {
			p.Rows = append(p.Rows, views.BroadcastRow{ID: bc.ID, Name: bc.Name, Status: string(bc.Status), Created: bc.CreatedAt.In(b.zone()).Format("2 Jan 2006 15:04")})
		}
		return render(c, views.Broadcasts(p))
	}
}

// plan reads the console's form (an uploaded CSV, or a filter) and plans
// the broadcast; its page then shows whom it reaches, to confirm.
func (b *Broadcasts) plan() fiber.Handler {
	return func(c *fiber.Ctx) error {
		to, err := b.planForm(c)
		if err != nil {
			// Refused in place: the form keeps what was typed and the
			// file chosen, the reason above its button.
			return refused(c, err, views.Refusal)
		}
		return goOn(c, to)
	}
}

// planForm plans the broadcast the form describes and returns its page.
func (b *Broadcasts) planForm(c *fiber.Ctx) (string, error) {
	at, err := b.sendAt(c.FormValue("send_at"))
	if err != nil {
		return "", err
	}
	var tpl *models.TemplateRef // none: a flow's start without an opening template
	if name := strings.TrimSpace(c.FormValue("template")); name != "" {
		tpl = &models.TemplateRef{Name: name, Language: strings.TrimSpace(c.FormValue("language")), Params: pairs(c.FormValue("params"))}
	}
	req := pipeline.BroadcastRequest{Name: c.FormValue("name"), Channel: models.Channel(c.FormValue("channel")), SendAt: at,
		Message:  models.BroadcastMessage{Template: tpl, FlowID: strings.TrimSpace(c.FormValue("start_flow"))},
		Audience: models.Audience{FlowID: strings.TrimSpace(c.FormValue("flow")), State: strings.TrimSpace(c.FormValue("state")), Vars: pairs(c.FormValue("vars"))}}
	if len(req.Audience.Vars) == 0 {
		req.Audience.Vars = nil
	}
	if day := strings.TrimSpace(c.FormValue("since")); day != "" {
		t, err := time.ParseInLocation("2006-01-02", day, b.zone())
		if err != nil {
			return "", models.Errorf(models.EINVALID, "Last message since is a date.")
		}
		req.Audience.LastMessageAfter = &t
	}
	if fh, err := c.FormFile("csv"); err == nil && fh.Filename != "" { // a file chosen, even an empty one
		f, err := fh.Open()
		if err != nil {
			return "", models.Wrap(err, models.EINVALID, "The CSV could not be read.")
		}
		defer f.Close()
		req.CSV = f
	}
	plan, err := b.Actions.PlanBroadcast(c.UserContext(), actorOf(c), req)
	if err != nil {
		return "", err
	}
	to := "/broadcasts/" + strconv.FormatInt(plan.Broadcast.ID, 10)
	if len(plan.BadLines) > 0 {
		lines := make([]string, len(plan.BadLines))
		for i, l := range plan.BadLines {
			lines[i] = strconv.Itoa(l.Line)
		}
		to += "?bad=" + strings.Join(lines, ",")
	}
	return to, nil
}

// pairs reads "name=value" lines.
func pairs(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if k = strings.ToLower(strings.TrimSpace(k)); ok && k != "" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func (b *Broadcasts) page() fiber.Handler {
	return func(c *fiber.Ctx) error {
		bc, progress, err := b.Actions.Broadcast(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		p := views.BroadcastProps{Staff: badge(c), ID: bc.ID, Name: bc.Name, Channel: string(bc.Channel), Progress: b.progressProps(c, bc, progress)}
		if t := bc.Message.Template; t != nil {
			p.Template = t.Name + " (" + t.Language + ")"
		}
		if bc.SendAt != nil {
			p.SendAt = bc.SendAt.In(b.zone()).Format("2 Jan 2006 15:04 MST")
		}
		for _, s := range strings.Split(c.Query("bad"), ",") {
			if n, err := strconv.Atoi(s); err == nil && len(p.BadLines) < 100 {
				p.BadLines = append(p.BadLines, n)
			}
		}
		return render(c, views.Broadcast(p))
	}
}

func (b *Broadcasts) progress() fiber.Handler {
	return func(c *fiber.Ctx) error {
		status, progress, err := b.Actions.BroadcastProgress(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		return render(c, views.BroadcastProgress(b.progressProps(c, &models.Broadcast{ID: idParam(c), Status: status}, progress)))
	}
}

func (b *Broadcasts) consoleChange(action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := b.change(c, action); err != nil {
			return err
		}
		return c.Redirect("/broadcasts/"+strconv.FormatInt(idParam(c), 10), fiber.StatusSeeOther)
	}
}

// exclusionLabels say why contacts were left out, as staff read it.
var exclusionLabels = map[string]string{
	models.ExcludedOptedOut:      "Opted out",
	models.ExcludedInvalidNumber: "Not a valid number",
	models.ExcludedNoTemplate:    "No approved template in their language",
	models.ExcludedHandoff:       "In a hand-off",
	models.ExcludedDuplicate:     "Repeated line",
	models.ExcludedBadParams:     "Their variables do not fill the template",
	models.ExcludedInFlow:        "Already in a conversation",
	models.ExcludedRefused:       "Their conversation could not be started",
}

// progressProps are a broadcast's progress as its page shows it, with the
// chart drawn as SVG points on the server (no script, no CDN).
func (b *Broadcasts) progressProps(c *fiber.Ctx, bc *models.Broadcast, pr *models.BroadcastProgress) views.BroadcastProgressProps {
	s := bc.Status
	p := views.BroadcastProgressProps{ID: bc.ID, Status: string(s), Reached: pr.Reached, Pending: pr.Pending, Queued: pr.Queued, Sent: pr.Sent,
		Delivered: pr.Delivered, Read: pr.Read, Failed: pr.Failed, Cancelled: pr.Cancelled, Replied: pr.Replied,
		Live:       s == models.BroadcastRunning || s == models.BroadcastScheduled || pr.Queued > 0,
		CanConfirm: s == models.BroadcastDraft, CanPause: s == models.BroadcastRunning || s == models.BroadcastScheduled,
		CanResume: s == models.BroadcastPaused, CanCancel: s != models.BroadcastDone && s != models.BroadcastCancelled}
	if badge := badge(c); badge != nil {
		p.CSRF = badge.CSRF
	}
	reasons := make([]string, 0, len(pr.Excluded))
	for r := range pr.Excluded {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		label := exclusionLabels[r]
		if label == "" {
			label = r
		}
		p.Excluded = append(p.Excluded, views.BroadcastCount{Label: label, N: pr.Excluded[r]})
	}
	if n := len(pr.Series); n > 1 && pr.Reached > 0 {
		var pts []string
		for i, pt := range pr.Series {
			x := float64(i) * 600 / float64(n-1)
			y := 155 - float64(pt.Sent)*150/float64(pr.Reached)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		p.Chart = strings.Join(pts, " ")
		p.ChartFrom = pr.Series[0].At.In(b.zone()).Format("15:04:05")
		p.ChartTo = pr.Series[n-1].At.In(b.zone()).Format("15:04:05")
	}
	return p
}
