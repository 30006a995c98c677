// Package accounts changes staff accounts: adding a member, changing their
// role, deactivating, reactivating and deleting them. It is the one place
// these changes are made, for the console, the JSON API and `parley users`
// alike: in Supabase mode the change is made at Supabase first (bounded,
// holding no database lock), then here with its audit entry in one
// transaction, and the change at Supabase is undone when the one here
// fails.
package accounts

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

// Store is the staff table (store.StaffStore). The changes take the
// transaction their audit entry is written in.
type Store interface {
	// Get returns ENOTFOUND when there is no such member.
	Get(ctx context.Context, id string) (*models.StaffUser, error)
	// CreateIn returns ECONFLICT when the email or id is staff already.
	CreateIn(ctx context.Context, tx *gorm.DB, id, email string, role models.Role, passwordHash string) (*models.StaffUser, error)
	SetRole(ctx context.Context, tx *gorm.DB, id string, role models.Role) error
	SetActive(ctx context.Context, tx *gorm.DB, id string, active bool) error
	// Deactivate marks the member inactive and ends their sessions in tx;
	// ECONFLICT for the last active admin.
	Deactivate(ctx context.Context, tx *gorm.DB, id string) error
	ForgetIn(ctx context.Context, tx *gorm.DB, id string) error
}

// Remote is Supabase Auth's user administration (auth.GoTrueAdmin).
type Remote interface {
	Create(ctx context.Context, email, password string, role models.Role) (string, error)
	Invite(ctx context.Context, email string, role models.Role) (string, error)
	SetRole(ctx context.Context, id string, role models.Role) error
	SetBanned(ctx context.Context, id string, banned bool) error
	Delete(ctx context.Context, id string) error
}

// Auditor writes a change and its audit entry in one transaction
// (store.AuditStore).
type Auditor interface {
	Within(ctx context.Context, e *models.AuditEvent, change func(tx *gorm.DB) error) error
	Fingerprint(text string) string
}

// Service makes the changes. Exactly one of Local and Remote says where
// accounts live: Local (Parley's own passwords), or Remote (Supabase);
// with neither, staff cannot be created here (Supabase mode without the
// service-role key).
type Service struct {
	Staff  Store
	Remote Remote // nil unless Supabase mode with the service-role key
	Local  bool
	Audit  Auditor // nil: changes go unaudited (tests of other parts)
	// Via, when set, is written in every entry's details (the command
	// line's "cli"), as no staff member makes those changes.
	Via    string
	Logger *slog.Logger // nil: slog.Default()
}

// remoteTimeout bounds one call to Supabase's admin API, within the
// caller's own deadline.
const remoteTimeout = 10 * time.Second

// remote runs call against Supabase's user administration (nothing in
// local mode), bounded by remoteTimeout and outside any transaction: no
// database lock is held while Supabase answers.
func (s *Service) remote(ctx context.Context, call func(ctx context.Context) error) error {
	if s.Remote == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	return call(ctx)
}

// undoRemote reverts a change made at Supabase whose change here failed.
// It runs even if the request was cancelled (bounded on its own), and a
// revert that fails too is logged by staff id and error code only.
func (s *Service) undoRemote(ctx context.Context, action, id string, revert func(ctx context.Context) error) {
	if err := s.remote(context.WithoutCancel(ctx), revert); err != nil {
		s.logger().Error("a change at Supabase could not be undone after the change here failed", slog.String("action", action),
			slog.String("staff_id", id), slog.String("code", models.ErrorCode(err)))
	}
}

// within makes change and its audit entry (action by actor on the member
// id, "" until change knows it) one transaction.
func (s *Service) within(ctx context.Context, actor models.Actor, action, id string, details map[string]any, change func(tx *gorm.DB, e *models.AuditEvent) error) error {
	if s.Via != "" {
		if details == nil {
			details = map[string]any{}
		}
		details["via"] = s.Via
	}
	e := &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: action, SubjectType: "staff", SubjectID: id, Details: details}
	if s.Audit == nil {
		return change(nil, e)
	}
	return s.Audit.Within(ctx, e, func(tx *gorm.DB) error { return change(tx, e) })
}

// fingerprint is an email as the audit log keeps it.
func (s *Service) fingerprint(email string) string {
	if s.Audit == nil {
		return ""
	}
	return s.Audit.Fingerprint(email)
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}
