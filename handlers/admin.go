package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/a-h/templ"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/accounts"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// Admin is the console's administration: staff members, the audit log and
// the system page.
type Admin struct {
	Audit interface {
		List(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
		Verify(ctx context.Context) (int, error)
		SignInFailures(ctx context.Context, since time.Time, limit int) ([]store.SignInFailure, error)
	}
	System *System // nil: no system page
}

// System is what the system page reads.
type System struct {
	DB        *store.DB
	Features  []views.Feature
	Providers []string // the channels configured (their providers)
	ActiveKey string   // the key new values are sealed with
	Rotations interface {
		Rotations(ctx context.Context) ([]*store.RotationStatus, error)
	}
	// Breakers name each AI service and tell its circuit breaker's state.
	Breakers map[string]func() string
}

// roles, most powerful first.
var roles = []string{string(models.RoleAdmin), string(models.RoleSupervisor), string(models.RoleAgent), string(models.RoleViewer)}

func (ad *Admin) register(app *fiber.App, a *Access, signedIn fiber.Handler) {
	if admin, ok := a.Staff.(StaffAdmin); ok {
		manage := require(auth.ManageStaff)
		app.Get("/admin/staff", signedIn, manage, ad.staffPage(a, admin))
		app.Post("/admin/staff", signedIn, manage, ad.addStaff(a, admin))
		app.Post("/admin/staff/:id", signedIn, manage, ad.changeStaff(a, admin))
	}
	if ad.Audit != nil {
		app.Get("/admin/audit", signedIn, require(auth.ReadAudit), ad.auditPage(a))
	}
	if ad.System != nil {
		app.Get("/admin/system", signedIn, require(auth.ManageKeys), ad.systemPage())
	}
}

func (ad *Admin) staffPage(a *Access, admin StaffAdmin) fiber.Handler {
	return func(c *fiber.Ctx) error {
		const page = 100
		members, err := admin.List(c.UserContext(), c.Query("after"), page)
		if err != nil {
			return err
		}
		p := views.StaffAdminProps{Staff: badge(c), Local: a.Local != nil, Invite: a.Remote != nil, Roles: roles, Notice: notices[c.Query("done")]}
		me := principal(c).UserID
		for _, m := range members {
			p.Members = append(p.Members, views.StaffRow{ID: m.ID, Email: m.Email, Role: string(m.Role), Active: m.Active, Self: m.ID == me})
		}
		if len(members) == page {
			p.Next = "/admin/staff?" + url.Values{"after": {members[page-1].Email}}.Encode()
		}
		return render(c, views.StaffAdmin(p))
	}
}

// notices say what the last staff action did (the page after it).
var notices = map[string]string{
	"added":   "Added. They can sign in now.",
	"invited": "Invited. They can sign in once they accept the invitation sent to them.",
	"changed": "Saved.",
}

func (ad *Admin) addStaff(a *Access, admin StaffAdmin) fiber.Handler {
	return func(c *fiber.Ctx) error {
		m := accounts.NewMember{Email: strings.TrimSpace(c.FormValue("email")), Role: models.Role(c.FormValue("role")), Password: c.FormValue("password")}
		var err error = models.Errorf(models.EINVALID, "Give the new member's email address.")
		if strings.Contains(m.Email, "@") {
			_, err = a.accounts(admin).Create(c.UserContext(), actorOf(c), m)
		}
		if err != nil {
			return refused(c, err, func(reason string) templ.Component {
				// The email and role are kept, the password never sent back.
				return views.AddMemberForm(views.AddMemberProps{CSRF: badge(c).CSRF, Roles: roles, Local: a.Local != nil, Invite: a.Remote != nil,
					Email: m.Email, Role: string(m.Role), Error: reason})
			})
		}
		if a.Remote != nil && m.Password == "" { // Supabase sent them an invitation
			return goOn(c, "/admin/staff?done=invited")
		}
		return goOn(c, "/admin/staff?done=added")
	}
}

func (ad *Admin) changeStaff(a *Access, admin StaffAdmin) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var role *models.Role
		var active *bool
		if r := c.FormValue("role"); r != "" {
			rr := models.Role(r)
			role = &rr
		}
		switch c.FormValue("active") {
		case "true", "false":
			v := c.FormValue("active") == "true"
			active = &v
		case "":
		default:
			return models.Errorf(models.EINVALID, "active is true or false.")
		}
		var err error = models.Errorf(models.EINVALID, "Choose a role, or deactivate or reactivate.")
		if role != nil || active != nil {
			_, err = a.accounts(admin).Change(c.UserContext(), actorOf(c), c.Params("id"), role, active)
		}
		if err != nil {
			return refused(c, err, views.Refusal)
		}
		return goOn(c, "/admin/staff?done=changed")
	}
}

// auditPageSize is how many audit entries a page shows.
const auditPageSize = 50

// auditQueryOf reads the audit log's filters the console and the API
// share: the actor's email, an action or a group ending in ".", and days
// (YYYY-MM-DD, the last included).
func auditQueryOf(c *fiber.Ctx) (store.AuditQuery, error) {
	q := store.AuditQuery{ActorEmail: strings.TrimSpace(c.Query("actor")), Action: strings.TrimSpace(c.Query("action"))}
	var err error
	q.Since, q.Until, err = dayBounds(c.Query("since"), c.Query("until"))
	return q, err
}

// auditPage lists the audit log, filtered; ?verify=1 checks the whole
// chain too. Reading the log is itself audited: its details hold what
// staff searched for.
func (ad *Admin) auditPage(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := auditQueryOf(c)
		if err != nil {
			return err
		}
		q.Limit = auditPageSize
		if typ, id, ok := strings.Cut(strings.TrimSpace(c.Query("subject")), ":"); ok {
			q.SubjectType, q.SubjectID = typ, id
		} else {
			q.SubjectType = typ
		}
		q.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
		verify := c.Query("verify") == "1"
		if err := a.audit(c, "audit.read", "audit", "", map[string]any{"actor_fp": a.fingerprint(q.ActorEmail), "action": q.Action, "verify": verify}); err != nil {
			return err
		}
		ctx := c.UserContext()
		entries, err := ad.Audit.List(ctx, q)
		if err != nil {
			return err
		}
		kept := url.Values{}
		for _, k := range []string{"actor", "action", "subject", "since", "until"} {
			if v := c.Query(k); v != "" {
				kept.Set(k, v)
			}
		}
		p := views.AuditProps{Staff: badge(c), Actor: c.Query("actor"), Action: c.Query("action"), Subject: c.Query("subject"),
			Since: c.Query("since"), Until: c.Query("until")}
		verifyLink := url.Values{"verify": {"1"}}
		for k := range kept {
			verifyLink.Set(k, kept.Get(k))
		}
		p.VerifyLink = "/admin/audit?" + verifyLink.Encode()
		if verify {
			n, err := ad.Audit.Verify(ctx)
			switch {
			case models.ErrorCode(err) == models.EINTERNAL:
				p.Verified, p.Broken = models.ErrorMessage(err)+fmt.Sprintf(" (%d entries before it hold.)", n), true
			case err != nil:
				return err
			default:
				p.Verified = fmt.Sprintf("The chain holds: all %d entries link up and match their hashes.", n)
			}
		}
		for _, e := range entries {
			row := views.AuditRow{Seq: e.Seq, At: e.At.UTC().Format("2006-01-02 15:04:05"), Actor: e.ActorEmail, Role: string(e.ActorRole),
				Action: e.Action, Subject: strings.Trim(e.SubjectType+":"+e.SubjectID, ":")}
			switch {
			case e.ActorID == "":
				row.Actor = "system"
			case row.Actor == "":
				row.Actor = e.ActorID // no longer on the staff
			}
			if len(e.Details) > 0 {
				var b strings.Builder
				enc := json.NewEncoder(&b)
				enc.SetEscapeHTML(false) // the page escapes; \u003c would hide what was typed
				_ = enc.Encode(e.Details)
				row.Details = strings.TrimSpace(b.String())
			}
			p.Entries = append(p.Entries, row)
		}
		if len(entries) == auditPageSize {
			kept.Set("before", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
			p.Next = "/admin/audit?" + kept.Encode()
		}
		failures, err := ad.Audit.SignInFailures(ctx, time.Now().Add(-24*time.Hour), auditPageSize)
		if err != nil {
			return err
		}
		for _, f := range failures {
			p.SignInFailures = append(p.SignInFailures, views.SignInFailureRow{Window: f.WindowStart.UTC().Format("2006-01-02 15:04"), Via: f.Via,
				EmailFingerprint: f.EmailFingerprint, LastIP: f.LastIP, Attempts: f.Attempts, Throttled: f.Throttled})
		}
		return render(c, views.Audit(p))
	}
}

func (ad *Admin) systemPage() fiber.Handler {
	return func(c *fiber.Ctx) error {
		s, ctx := ad.System, c.UserContext()
		p := views.SystemProps{Staff: badge(c), Features: s.Features, ActiveKey: s.ActiveKey}
		last, err := store.LastInbound(ctx, s.DB, s.Providers)
		if err != nil {
			return err
		}
		for _, prov := range s.Providers {
			at := "never"
			if t := last[prov]; !t.IsZero() {
				at = t.UTC().Format("2006-01-02 15:04 UTC")
			}
			p.Channels = append(p.Channels, views.ChannelRow{Provider: prov, LastInbound: at})
		}
		counts, err := store.JobCounts(ctx, s.DB, append([]string{"discarded"}, store.JobsWaiting...))
		if err != nil {
			return err
		}
		failing, err := store.FailingJobs(ctx, s.DB, 20)
		if err != nil {
			return err
		}
		for _, j := range counts {
			p.Jobs = append(p.Jobs, views.JobRow{Kind: j.Kind, State: j.State, N: j.N})
		}
		for _, f := range failing {
			p.Failing = append(p.Failing, views.FailingRow{ID: f.ID, Kind: f.Kind, State: f.State, Error: f.Error,
				Attempts: fmt.Sprintf("%d/%d", f.Attempt, f.MaxAttempts), At: f.At.UTC().Format("2006-01-02 15:04")})
		}
		if s.Rotations != nil {
			rots, err := s.Rotations.Rotations(ctx)
			if err != nil {
				return err
			}
			for _, r := range rots {
				state := "stopped or running (parley keys rotate resumes it)"
				if r.FinishedAt != nil {
					state = "finished " + r.FinishedAt.UTC().Format("2006-01-02")
				}
				p.Rotations = append(p.Rotations, views.RotationRow{Column: r.Table + "." + r.Name, Target: r.TargetKey,
					Progress: fmt.Sprintf("%d/%d", r.Rewritten, r.Total), State: state})
			}
		}
		for name, state := range s.Breakers {
			p.Breakers = append(p.Breakers, views.BreakerRow{Service: name, State: state()})
		}
		sort.Slice(p.Breakers, func(i, j int) bool { return p.Breakers[i].Service < p.Breakers[j].Service })
		return render(c, views.System(p))
	}
}
