package handlers

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// StaffLookup finds the staff member an access token names.
type StaffLookup interface {
	// Get returns ENOTFOUND when there is no such staff member.
	Get(ctx context.Context, id string) (*models.StaffUser, error)
}

// Access is what authenticating staff needs.
type Access struct {
	Verifier *auth.Verifier
	Staff    StaffLookup
	// Local is the development provider (PARLEY_AUTH_MODE=local), nil in
	// Supabase mode: it signs staff in against Parley's own table and
	// serves its key set where Supabase serves a project's.
	Local *LocalProvider
	// Audit records sign-ins and every other audited action (nil: none,
	// for tests of other parts).
	Audit Auditor
	// Remote manages users at Supabase Auth (Supabase mode with the
	// service-role key); nil otherwise.
	Remote RemoteUsers
	// Personal exports and erases one person's data (store.PersonalData);
	// nil: not offered.
	Personal PersonalData
}

// Auditor appends to the audit log (store.AuditStore).
type Auditor interface {
	Record(ctx context.Context, e *models.AuditEvent) error
	// Within makes change and e one transaction: both or neither.
	Within(ctx context.Context, e *models.AuditEvent, change func(tx *gorm.DB) error) error
	// SignInFailed counts a failed sign-in outside the chain, keeping a
	// fingerprint of the email typed, never the email.
	SignInFailed(ctx context.Context, email, via, ip string, throttled bool) error
	// Fingerprint is a keyed fingerprint of typed text, which the log
	// keeps instead of the text.
	Fingerprint(text string) string
}

// audit records action by the signed-in staff member of c.
func (a *Access) audit(c *fiber.Ctx, action, subjectType, subjectID string, details map[string]any) error {
	var who *models.StaffUser
	if p := principal(c); p != nil {
		who = &models.StaffUser{ID: p.UserID, Role: p.Role}
	}
	return a.record(c, who, action, subjectType, subjectID, details)
}

// record audits action by actor (nil: nobody signed in) in request c. A
// failure to record fails the request: what is audited does not happen
// unrecorded.
func (a *Access) record(c *fiber.Ctx, actor *models.StaffUser, action, subjectType, subjectID string, details map[string]any) error {
	if a == nil || a.Audit == nil {
		return nil
	}
	return a.Audit.Record(c.UserContext(), eventOf(c, actor, action, subjectType, subjectID, details))
}

// within makes change and its audit entry (action by the signed-in staff
// member of c) one transaction. change may fill in the entry's subject
// and details once it knows them.
func (a *Access) within(c *fiber.Ctx, action, subjectType, subjectID string, details map[string]any, change func(tx *gorm.DB, e *models.AuditEvent) error) error {
	var who *models.StaffUser
	if p := principal(c); p != nil {
		who = &models.StaffUser{ID: p.UserID, Role: p.Role}
	}
	e := eventOf(c, who, action, subjectType, subjectID, details)
	if a == nil || a.Audit == nil {
		return change(nil, e)
	}
	return a.Audit.Within(c.UserContext(), e, func(tx *gorm.DB) error { return change(tx, e) })
}

// fingerprint is typed text as the audit log keeps it ("" for none).
func (a *Access) fingerprint(text string) string {
	if a == nil || a.Audit == nil || strings.TrimSpace(text) == "" {
		return ""
	}
	return a.Audit.Fingerprint(text)
}

// signInFailed counts a failed sign-in (by way of via) outside the chain.
func (a *Access) signInFailed(c *fiber.Ctx, email, via string, throttled bool) error {
	if a == nil || a.Audit == nil {
		return nil
	}
	return a.Audit.SignInFailed(c.UserContext(), email, via, c.IP(), throttled)
}

// eventOf is an audit entry of action by actor (nil: nobody signed in) in
// request c.
func eventOf(c *fiber.Ctx, actor *models.StaffUser, action, subjectType, subjectID string, details map[string]any) *models.AuditEvent {
	e := &models.AuditEvent{Action: action, SubjectType: subjectType, SubjectID: subjectID, RequestID: requestIDOf(c),
		IP: utils.CopyString(c.IP()), Details: details}
	if actor != nil {
		e.ActorID, e.ActorRole = actor.ID, actor.Role
	}
	return e
}

// principalKey is where the request's staff member is kept in Locals.
const principalKey = "principal"

// principal is the signed-in staff member of c (nil when anonymous).
func principal(c *fiber.Ctx) *auth.Principal {
	p, _ := c.Locals(principalKey).(*auth.Principal)
	return p
}

// bearer authenticates a JSON API request by its Supabase access token:
// 401 without a valid one, 403 when the token is valid but names nobody on
// the staff, or a deactivated member. The role comes from Parley's staff
// table at each request, so a change takes effect at once.
func (a *Access) bearer(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return models.Errorf(models.EUNAUTHORIZED, "Sign in: send Authorization: Bearer <access token>.")
	}
	p, err := a.authenticate(c.UserContext(), strings.TrimSpace(token))
	if err != nil {
		return err
	}
	c.Locals(principalKey, p)
	return c.Next()
}

// authenticate turns an access token into the staff member it names.
func (a *Access) authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	claims, err := a.Verifier.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	u, err := a.Staff.Get(ctx, claims.Subject)
	switch {
	case models.ErrorCode(err) == models.ENOTFOUND || (err == nil && !u.Active):
		return nil, models.Errorf(models.EFORBIDDEN, "This account has no access to Parley.")
	case err != nil:
		return nil, err
	}
	return &auth.Principal{UserID: u.ID, Email: u.Email, Role: u.Role, SessionID: claims.SessionID}, nil
}

// require lets the request through only for roles that may do p.
func require(p auth.Permission) fiber.Handler {
	return func(c *fiber.Ctx) error {
		who := principal(c)
		if who == nil {
			return models.Errorf(models.EUNAUTHORIZED, "Sign in first.")
		}
		if !auth.Can(who.Role, p) {
			return models.Errorf(models.EFORBIDDEN, "Your role (%s) may not do this.", who.Role)
		}
		return c.Next()
	}
}

// PersonalData exports and erases one person's data (store.PersonalData).
type PersonalData interface {
	Erase(ctx context.Context, id int64, actor *models.Actor) (store.Erased, error)
	Export(ctx context.Context, id int64) (*store.ContactExport, error)
}

// exportContact answers everything held of one contact, decrypted, for a
// subject-access request; audited before it is read.
func (a *Access) exportContact(c *fiber.Ctx) error {
	id := idParam(c)
	if err := a.audit(c, "contact.export", "contact", c.Params("id"), nil); err != nil {
		return err
	}
	exp, err := a.Personal.Export(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(exp)
}

// eraseContact removes everything of one contact; the erasure audits
// itself, with the counts.
func (a *Access) eraseContact(c *fiber.Ctx) error {
	id := idParam(c)
	actor := actorOf(c)
	n, err := a.Personal.Erase(c.UserContext(), id, &actor)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"erased": fiber.Map{"messages": n.Messages, "attachments": n.Attachments, "conversations": n.Conversations, "jobs": n.Jobs}})
}

// handleMe answers who the caller is and what they may do.
func handleMe(c *fiber.Ctx) error {
	p := principal(c)
	var may []auth.Permission
	for _, perm := range auth.All() {
		if auth.Can(p.Role, perm) {
			may = append(may, perm)
		}
	}
	return c.JSON(fiber.Map{"id": p.UserID, "email": p.Email, "role": p.Role, "permissions": may})
}
