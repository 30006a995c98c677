package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// SupabaseUsers is Supabase Auth as the pipeline's sign-in upkeep uses it:
// ending a session there after it ended here, and asking whether a staff
// member's user was banned or deleted at Supabase directly. Every call
// fails with EUNAVAILABLE while Auth cannot be reached (or answers 5xx).
type SupabaseUsers interface {
	// SignOut ends the session the access token belongs to.
	SignOut(ctx context.Context, accessToken string) error
	// RefreshAccess trades a refresh token for a fresh access token;
	// EUNAUTHORIZED when Supabase no longer knows it.
	RefreshAccess(ctx context.Context, refreshToken string) (access string, err error)
	// Standing says whether the user is gone (deleted) or banned;
	// ENOTIMPLEMENTED without the admin API (no service-role key).
	Standing(ctx context.Context, userID string) (gone, banned bool, err error)
}

// RecheckEvery is how often every active staff member is looked up at
// Supabase: a user banned or deleted there directly loses access here
// within this long, rather than when their token expires.
const RecheckEvery = 5 * time.Minute

// SignOutArgs retries ending console session SessionID at Supabase, after
// it ended here at once. Only the id travels in the job: the tokens stay
// sealed in the session's row.
type SignOutArgs struct {
	SessionID int64 `json:"session_id"`
}

// Kind implements river.JobArgs.
func (SignOutArgs) Kind() string { return "supabase_sign_out" }

// RecheckArgs is the periodic look-up of active staff at Supabase.
type RecheckArgs struct{}

// Kind implements river.JobArgs.
func (RecheckArgs) Kind() string { return "supabase_recheck" }

// SignOutLater queues the retry of a sign-out at Supabase that failed
// (Auth unreachable): River retries it with backoff until it succeeds.
func (p *Pipeline) SignOutLater(ctx context.Context, sessionID int64) error {
	if p.supabase == nil {
		return nil
	}
	_, err := p.worker.Insert(ctx, SignOutArgs{SessionID: sessionID}, &river.InsertOpts{MaxAttempts: 20})
	return err
}

type signOutWorker struct {
	river.WorkerDefaults[SignOutArgs]
	p *Pipeline
}

// Work ends the session at Supabase. An access token past its expiry is
// renewed with the session's refresh token first (GoTrue signs out only
// with a valid one). A refresh token Supabase no longer knows means the
// session ended there already.
func (w *signOutWorker) Work(ctx context.Context, job *river.Job[SignOutArgs]) error {
	access, refresh, expires, err := w.p.sessions.Tokens(ctx, job.Args.SessionID)
	switch {
	case models.ErrorCode(err) == models.ENOTFOUND:
		return nil // the member was removed, and their sessions with them
	case err != nil:
		return err
	}
	if time.Until(expires) < time.Minute && refresh != "" {
		access, err = w.p.supabase.RefreshAccess(ctx, refresh)
		switch models.ErrorCode(err) {
		case "":
		case models.EUNAUTHORIZED:
			return nil // the refresh token is gone at Supabase: so is the session
		default:
			return err
		}
	}
	return w.p.supabase.SignOut(ctx, access)
}

type recheckWorker struct {
	river.WorkerDefaults[RecheckArgs]
	p *Pipeline
}

// Timeout gives the look-ups of a large staff more than a message job's
// time; each call is bounded on its own as well.
func (w *recheckWorker) Timeout(*river.Job[RecheckArgs]) time.Duration { return 2 * time.Minute }

// Work runs Recheck; an outage, or a refusal to deactivate too many,
// waits for the next run.
func (w *recheckWorker) Work(ctx context.Context, _ *river.Job[RecheckArgs]) error {
	n, err := w.p.Recheck(ctx)
	switch models.ErrorCode(err) {
	case models.EUNAVAILABLE:
		w.p.log.Warn("staff re-check at Supabase skipped: Auth unavailable", slog.Int("deactivated", n))
		return nil
	case models.ECONFLICT: // logged by Recheck; retrying would find the same
		return nil
	}
	return err
}

// MaxRemovedPerRun is the most members one re-check deactivates. More
// found gone or banned at once looks like a misconfiguration (another
// project's URL or key) rather than a real removal: the run changes
// nobody and logs it, for an admin to look at.
const MaxRemovedPerRun = 3

// failStreak is how many look-ups in a row may fail before the run takes
// it for an outage and stops (one member's failure is skipped).
const failStreak = 3

// Recheck looks every active staff member up at Supabase and deactivates
// those whose user was deleted or banned there directly: their sessions
// end and the deactivation is audited (actor: the system), in one
// transaction each. It returns how many it deactivated.
//
// The walk goes by id from where the last run stopped (a cursor, kept in
// this process: a new leader starts from the first), so a run cut short
// by its deadline is resumed, not restarted. A member whose look-up fails
// is logged and skipped; failStreak failures in a row stop the walk with
// EUNAVAILABLE (only those found gone before are deactivated: an outage
// never signs everyone out). The next run resumes after them (they are
// asked again a round later), so members whose look-ups keep failing
// never hold up those after them. Nor can a wrong configuration empty
// the staff: more than MaxRemovedPerRun found gone changes nobody
// (ECONFLICT), and the last active admin is never deactivated.
func (p *Pipeline) Recheck(ctx context.Context) (int, error) {
	if p.supabase == nil {
		return 0, nil
	}
	staff := store.NewStaffStore(p.db)
	p.recheckMu.Lock()
	defer p.recheckMu.Unlock()
	start := p.recheckAfter
	after, wrapped := start, start == ""
	var removed []removal
	streak := 0
	var stopped error
walk:
	for {
		page, err := staff.ActiveAfter(ctx, after, 100)
		if err != nil {
			return 0, err
		}
		for _, u := range page {
			if wrapped && start != "" && u.ID > start {
				break walk // every member seen once (the last run's last again: it may have failed)
			}
			after, p.recheckAfter = u.ID, u.ID
			call, cancel := context.WithTimeout(ctx, 10*time.Second)
			gone, banned, err := p.supabase.Standing(call, u.ID)
			cancel()
			switch code := models.ErrorCode(err); {
			case code == models.ENOTIMPLEMENTED:
				return 0, nil // no admin API (no service-role key): nothing can be asked
			case code == models.EINVALID:
				// not a Supabase user id (made in local mode): nothing to ask
			case err != nil:
				p.log.Warn("staff re-check at Supabase: one member's look-up failed; skipped",
					slog.String("staff_id", u.ID), slog.String("code", code))
				if streak++; streak >= failStreak {
					stopped = models.Errorf(models.EUNAVAILABLE, "Supabase Auth failed %d look-ups in a row.", streak)
					break walk
				}
				continue
			case gone || banned:
				removed = append(removed, removal{id: u.ID, gone: gone})
			}
			streak = 0
		}
		if len(page) < 100 {
			if wrapped {
				break
			}
			wrapped, after = true, ""
		}
	}
	if len(removed) > MaxRemovedPerRun {
		p.log.Error("staff re-check at Supabase found more members deleted or banned than one run may deactivate; changed nobody: check SUPABASE_URL and the service-role key, or deactivate them in the console",
			slog.Int("found", len(removed)), slog.Int("limit", MaxRemovedPerRun))
		return 0, models.Errorf(models.ECONFLICT, "%d members found deleted or banned at Supabase, more than %d: changed nobody.", len(removed), MaxRemovedPerRun)
	}
	deactivated := 0
	for _, r := range removed {
		if err := p.deactivateRemoved(ctx, staff, r.id, r.gone); err != nil {
			p.log.Warn("staff re-check at Supabase: a member removed there was not deactivated",
				slog.String("staff_id", r.id), slog.String("code", models.ErrorCode(err)))
			continue
		}
		deactivated++
	}
	return deactivated, stopped // nil unless the walk stopped early
}

// removal is a member found deleted (gone) or banned at Supabase.
type removal struct {
	id   string
	gone bool
}

// deactivateRemoved marks a member removed at Supabase inactive, ends
// their sessions and audits it, together.
func (p *Pipeline) deactivateRemoved(ctx context.Context, staff *store.StaffStore, id string, gone bool) error {
	reason := "banned at Supabase"
	if gone {
		reason = "deleted at Supabase"
	}
	return p.audit.Within(ctx, &models.AuditEvent{Action: "staff.deactivate", SubjectType: "staff", SubjectID: id,
		Details: map[string]any{"reason": reason}}, func(tx *gorm.DB) error { return staff.Deactivate(ctx, tx, id) })
}

// supabaseJobs is the periodic re-check, when Supabase's admin API is
// configured.
func supabaseJobs(users SupabaseUsers) []*river.PeriodicJob {
	if users == nil {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(RecheckEvery),
		func() (river.JobArgs, *river.InsertOpts) { return RecheckArgs{}, nil },
		&river.PeriodicJobOpts{ID: "supabase_recheck"})}
}
