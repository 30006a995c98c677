package accounts

import (
	"context"
	"log/slog"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// NewMember is who to add. In local mode Password is required; in
// Supabase mode UserID gives an existing user access, else a Password
// makes the user and none sends an invitation.
type NewMember struct {
	Email    string
	Role     models.Role
	Password string
	UserID   string
}

func invalidRole(role models.Role) error {
	return models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", role)
}

// Create adds a staff member, audited as staff.create. EINVALID for a
// role that is not one, ECONFLICT for someone who is staff already,
// ENOTIMPLEMENTED in Supabase mode without the service-role key.
func (s *Service) Create(ctx context.Context, actor models.Actor, m NewMember) (_ *models.StaffUser, err error) {
	if !m.Role.Valid() {
		return nil, invalidRole(m.Role)
	}
	hash, userID := "", m.UserID
	switch {
	case s.Local:
		if hash, err = auth.HashPassword(m.Password); err != nil {
			return nil, err
		}
		userID = ""
	case s.Remote == nil:
		return nil, models.Errorf(models.ENOTIMPLEMENTED, "Staff cannot be created here: SUPABASE_SERVICE_ROLE_KEY is not set.")
	case userID != "":
		// A member already is staff: refused before their mirrored role
		// at Supabase is touched (nothing here could restore it).
		if _, err := s.Staff.Get(ctx, userID); err == nil {
			return nil, models.Errorf(models.ECONFLICT, "This user is staff already.")
		}
		err = s.remote(ctx, func(ctx context.Context) error { return s.Remote.SetRole(ctx, userID, m.Role) })
	default:
		err = s.remote(ctx, func(ctx context.Context) (err error) {
			if m.Password != "" {
				userID, err = s.Remote.Create(ctx, m.Email, m.Password, m.Role)
			} else {
				userID, err = s.Remote.Invite(ctx, m.Email, m.Role)
			}
			return err
		})
		// The user made above is undone if the local row or its entry
		// cannot be written (an existing user given access keeps its
		// mirrored role: what it held before is not known here).
		defer func() {
			if err != nil && userID != "" {
				s.undoRemote(ctx, "staff.create", userID, func(ctx context.Context) error { return s.Remote.Delete(ctx, userID) })
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	var u *models.StaffUser
	err = s.within(ctx, actor, "staff.create", "", map[string]any{}, func(tx *gorm.DB, e *models.AuditEvent) (err error) {
		if u, err = s.Staff.CreateIn(ctx, tx, userID, m.Email, m.Role, hash); err != nil {
			return err
		}
		e.SubjectID = u.ID
		e.Details["email_fp"], e.Details["role"] = s.fingerprint(u.Email), string(u.Role)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Change sets a member's role, active state or both (nil: unchanged),
// each change audited (staff.role_change, staff.deactivate,
// staff.reactivate). Nobody demotes or deactivates themselves (ECONFLICT),
// nor the last active admin.
func (s *Service) Change(ctx context.Context, actor models.Actor, id string, role *models.Role, active *bool) (*models.StaffUser, error) {
	u, err := s.Staff.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if role != nil && !role.Valid() {
		return nil, invalidRole(*role)
	}
	if id == actor.ID && ((active != nil && !*active) || (role != nil && *role != models.RoleAdmin)) {
		return nil, models.Errorf(models.ECONFLICT, "You cannot demote or deactivate yourself; ask another admin.")
	}
	if role != nil && *role != u.Role {
		// Mirrored into app_metadata.role first, undone if the change here fails.
		if err := s.remote(ctx, func(ctx context.Context) error { return s.Remote.SetRole(ctx, id, *role) }); err != nil {
			return nil, err
		}
		err := s.within(ctx, actor, "staff.role_change", id, map[string]any{"from": string(u.Role), "to": string(*role)},
			func(tx *gorm.DB, _ *models.AuditEvent) error { return s.Staff.SetRole(ctx, tx, id, *role) })
		if err != nil {
			s.undoRemote(ctx, "staff.role_change", id, func(ctx context.Context) error { return s.Remote.SetRole(ctx, id, u.Role) })
			return nil, err
		}
	}
	if active != nil && *active != u.Active {
		action := "staff.reactivate"
		if !*active {
			action = "staff.deactivate"
		}
		// A deactivated member cannot sign in at Supabase either: banned
		// first, unbanned again if the change here fails.
		if err := s.remote(ctx, func(ctx context.Context) error { return s.Remote.SetBanned(ctx, id, !*active) }); err != nil {
			return nil, err
		}
		err := s.within(ctx, actor, action, id, nil, func(tx *gorm.DB, _ *models.AuditEvent) error {
			if *active {
				return s.Staff.SetActive(ctx, tx, id, true)
			}
			return s.Staff.Deactivate(ctx, tx, id) // their open sessions end now, not at their next request
		})
		if err != nil {
			s.undoRemote(ctx, action, id, func(ctx context.Context) error { return s.Remote.SetBanned(ctx, id, !u.Active) })
			return nil, err
		}
	}
	return s.Staff.Get(ctx, id)
}

// Delete removes an account for good (at Supabase too), audited as
// staff.delete; the audit log keeps what they did, under their id.
// ECONFLICT for oneself.
func (s *Service) Delete(ctx context.Context, actor models.Actor, id string) error {
	u, err := s.Staff.Get(ctx, id)
	if err != nil {
		return err
	}
	if id == actor.ID {
		return models.Errorf(models.ECONFLICT, "You cannot delete yourself; ask another admin.")
	}
	// A deletion at Supabase cannot be undone: the user is banned first
	// (undone if the change here fails), and deleted after the commit. A
	// deletion that fails then leaves a banned user who is no longer
	// staff, which grants nothing.
	if err := s.remote(ctx, func(ctx context.Context) error { return s.Remote.SetBanned(ctx, id, true) }); err != nil {
		return err
	}
	err = s.within(ctx, actor, "staff.delete", id, map[string]any{"email_fp": s.fingerprint(u.Email)},
		func(tx *gorm.DB, _ *models.AuditEvent) error { return s.Staff.ForgetIn(ctx, tx, id) })
	if err != nil {
		s.undoRemote(ctx, "staff.delete", id, func(ctx context.Context) error { return s.Remote.SetBanned(ctx, id, !u.Active) })
		return err
	}
	if err := s.remote(ctx, func(ctx context.Context) error { return s.Remote.Delete(ctx, id) }); err != nil {
		s.logger().Warn("staff deleted here but not at Supabase (left banned there)", slog.String("staff_id", id), slog.String("code", models.ErrorCode(err)))
	}
	return nil
}
