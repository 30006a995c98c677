package handlers

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// StaffAdmin manages staff accounts (store.StaffStore).
type StaffAdmin interface {
	StaffLookup
	List(ctx context.Context, after string, limit int) ([]*models.StaffUser, error)
	// The changes take the transaction their audit entry is written in.
	CreateIn(ctx context.Context, tx *gorm.DB, id, email string, role models.Role, passwordHash string) (*models.StaffUser, error)
	SetRole(ctx context.Context, tx *gorm.DB, id string, role models.Role) error
	SetActive(ctx context.Context, tx *gorm.DB, id string, active bool) error
	// Deactivate marks the member inactive and ends their sessions in tx;
	// ECONFLICT for the last active admin.
	Deactivate(ctx context.Context, tx *gorm.DB, id string) error
	ForgetIn(ctx context.Context, tx *gorm.DB, id string) error
}

// RemoteUsers is Supabase Auth's user administration (auth.GoTrueAdmin):
// nil in local mode.
type RemoteUsers interface {
	Create(ctx context.Context, email, password string, role models.Role) (string, error)
	Invite(ctx context.Context, email string, role models.Role) (string, error)
	SetRole(ctx context.Context, id string, role models.Role) error
	SetBanned(ctx context.Context, id string, banned bool) error
	Delete(ctx context.Context, id string) error
}

type staffJSON struct {
	ID     string      `json:"id"`
	Email  string      `json:"email"`
	Role   models.Role `json:"role"`
	Active bool        `json:"active"`
}

func staffOut(u *models.StaffUser) staffJSON {
	return staffJSON{ID: u.ID, Email: u.Email, Role: u.Role, Active: u.Active}
}

// registerStaffAPI adds staff administration under api (admins only).
func (a *Access) registerStaffAPI(api fiber.Router) {
	admin, ok := a.Staff.(StaffAdmin)
	if !ok {
		return
	}
	g := api.Group("/staff", require(auth.ManageStaff))
	g.Get("", func(c *fiber.Ctx) error {
		limit, _ := strconv.Atoi(c.Query("limit", "50"))
		limit = min(max(limit, 1), 200)
		page, err := admin.List(c.UserContext(), c.Query("after"), limit)
		if err != nil {
			return err
		}
		out := make([]staffJSON, len(page))
		for i, u := range page {
			out[i] = staffOut(u)
		}
		next := ""
		if len(page) == limit {
			next = page[len(page)-1].Email
		}
		return c.JSON(fiber.Map{"staff": out, "next": next})
	})
	g.Post("", func(c *fiber.Ctx) error {
		var in struct {
			Email    string      `json:"email"`
			Role     models.Role `json:"role"`
			Password string      `json:"password"` // local mode; in Supabase mode, none sends an invitation
			UserID   string      `json:"user_id"`  // Supabase mode: an existing user to give access
		}
		if err := c.BodyParser(&in); err != nil {
			return models.Errorf(models.EINVALID, "Send JSON with email and role.")
		}
		u, err := a.createStaff(c, admin, in.Email, in.Role, in.Password, in.UserID)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(staffOut(u))
	})
	g.Delete("/:id", a.deleteStaff(admin))
	g.Patch("/:id", func(c *fiber.Ctx) error {
		var in struct {
			Role   *models.Role `json:"role"`
			Active *bool        `json:"active"`
		}
		if err := c.BodyParser(&in); err != nil || (in.Role == nil && in.Active == nil) {
			return models.Errorf(models.EINVALID, "Send JSON with role, active or both.")
		}
		u, err := a.changeStaff(c, admin, c.Params("id"), in.Role, in.Active)
		if err != nil {
			return err
		}
		return c.JSON(staffOut(u))
	})
}

// createStaff adds a staff member (audited): in local mode with a password;
// in Supabase mode as an existing user (userID), with a password, or by
// invitation.
func (a *Access) createStaff(c *fiber.Ctx, admin StaffAdmin, email string, role models.Role, password, userID string) (_ *models.StaffUser, err error) {
	if !role.Valid() {
		return nil, models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", role)
	}
	ctx, hash := c.UserContext(), ""
	switch {
	case a.Local != nil:
		if hash, err = auth.HashPassword(password); err != nil {
			return nil, err
		}
		userID = ""
	case a.Remote == nil:
		return nil, models.Errorf(models.ENOTIMPLEMENTED, "Staff cannot be created here: SUPABASE_SERVICE_ROLE_KEY is not set.")
	case userID != "":
		// A member already is staff: refused before their mirrored role
		// at Supabase is touched (nothing here could restore it).
		if _, err := admin.Get(ctx, userID); err == nil {
			return nil, models.Errorf(models.ECONFLICT, "This user is staff already.")
		}
		err = a.remote(ctx, func(ctx context.Context) error { return a.Remote.SetRole(ctx, userID, role) })
	default:
		err = a.remote(ctx, func(ctx context.Context) (err error) {
			if password != "" {
				userID, err = a.Remote.Create(ctx, email, password, role)
			} else {
				userID, err = a.Remote.Invite(ctx, email, role)
			}
			return err
		})
		// The user made above is undone if the local row or its entry
		// cannot be written (an existing user given access keeps its
		// mirrored role: what it held before is not known here).
		defer func() {
			if err != nil && userID != "" {
				a.undoRemote(ctx, "staff.create", userID, func(ctx context.Context) error { return a.Remote.Delete(ctx, userID) })
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	var u *models.StaffUser
	err = a.within(c, "staff.create", "staff", "", nil, func(tx *gorm.DB, e *models.AuditEvent) (err error) {
		if u, err = admin.CreateIn(ctx, tx, userID, email, role, hash); err != nil {
			return err
		}
		e.SubjectID, e.Details = u.ID, map[string]any{"email_fp": a.fingerprint(u.Email), "role": string(u.Role)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// changeStaff sets a member's role, active state or both (nil: unchanged),
// each change audited; nobody demotes or deactivates themselves.
func (a *Access) changeStaff(c *fiber.Ctx, admin StaffAdmin, id string, role *models.Role, active *bool) (*models.StaffUser, error) {
	ctx := c.UserContext()
	u, err := admin.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if role != nil && !role.Valid() {
		return nil, models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", *role)
	}
	if id == principal(c).UserID && ((active != nil && !*active) || (role != nil && *role != models.RoleAdmin)) {
		return nil, models.Errorf(models.ECONFLICT, "You cannot demote or deactivate yourself; ask another admin.")
	}
	if role != nil && *role != u.Role {
		// Mirrored into app_metadata.role first, undone if the change here fails.
		if err := a.remote(ctx, func(ctx context.Context) error { return a.Remote.SetRole(ctx, id, *role) }); err != nil {
			return nil, err
		}
		err := a.within(c, "staff.role_change", "staff", id, map[string]any{"from": string(u.Role), "to": string(*role)},
			func(tx *gorm.DB, _ *models.AuditEvent) error { return admin.SetRole(ctx, tx, id, *role) })
		if err != nil {
			a.undoRemote(ctx, "staff.role_change", id, func(ctx context.Context) error { return a.Remote.SetRole(ctx, id, u.Role) })
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
		if err := a.remote(ctx, func(ctx context.Context) error { return a.Remote.SetBanned(ctx, id, !*active) }); err != nil {
			return nil, err
		}
		err := a.within(c, action, "staff", id, nil, func(tx *gorm.DB, _ *models.AuditEvent) error {
			if *active {
				return admin.SetActive(ctx, tx, id, true)
			}
			return admin.Deactivate(ctx, tx, id)
		})
		if err != nil {
			a.undoRemote(ctx, action, id, func(ctx context.Context) error { return a.Remote.SetBanned(ctx, id, !u.Active) })
			return nil, err
		}
	}
	return admin.Get(ctx, id)
}

// deleteStaff removes an account for good (at Supabase too); the audit
// log keeps what they did, under their id.
func (a *Access) deleteStaff(admin StaffAdmin) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, id := c.UserContext(), c.Params("id")
		u, err := admin.Get(ctx, id)
		if err != nil {
			return err
		}
		if id == principal(c).UserID {
			return models.Errorf(models.ECONFLICT, "You cannot delete yourself; ask another admin.")
		}
		// A deletion at Supabase cannot be undone: the user is banned first
		// (undone if the change here fails), and deleted after the commit. A
		// deletion that fails then leaves a banned user who is no longer
		// staff, which grants nothing.
		if err := a.remote(ctx, func(ctx context.Context) error { return a.Remote.SetBanned(ctx, id, true) }); err != nil {
			return err
		}
		err = a.within(c, "staff.delete", "staff", id, map[string]any{"email_fp": a.fingerprint(u.Email)},
			func(tx *gorm.DB, _ *models.AuditEvent) error { return admin.ForgetIn(ctx, tx, id) })
		if err != nil {
			a.undoRemote(ctx, "staff.delete", id, func(ctx context.Context) error { return a.Remote.SetBanned(ctx, id, !u.Active) })
			return err
		}
		if err := a.remote(ctx, func(ctx context.Context) error { return a.Remote.Delete(ctx, id) }); err != nil {
			slog.Warn("staff deleted here but not at Supabase (left banned there)", slog.String("staff_id", id), slog.String("code", models.ErrorCode(err)))
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// remoteTimeout bounds one call to Supabase's admin API, within the
// request's own deadline.
const remoteTimeout = 10 * time.Second

// remote runs call against Supabase's user administration (nothing in
// local mode), bounded by remoteTimeout and outside any transaction: no
// database lock is held while Supabase answers.
func (a *Access) remote(ctx context.Context, call func(ctx context.Context) error) error {
	if a.Remote == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	return call(ctx)
}

// undoRemote reverts a change made at Supabase whose change here failed.
// It runs even if the request was cancelled (bounded on its own), and a
// revert that fails too is logged by staff id and error code only.
func (a *Access) undoRemote(ctx context.Context, action, id string, revert func(ctx context.Context) error) {
	if err := a.remote(context.WithoutCancel(ctx), revert); err != nil {
		slog.Error("a change at Supabase could not be undone after the change here failed", slog.String("action", action),
			slog.String("staff_id", id), slog.String("code", models.ErrorCode(err)))
	}
}
