package handlers

import (
	"context"
	"strconv"

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
func (a *Access) createStaff(c *fiber.Ctx, admin StaffAdmin, email string, role models.Role, password, userID string) (*models.StaffUser, error) {
	if !role.Valid() {
		return nil, models.Errorf(models.EINVALID, "%q is not a role (admin, supervisor, agent or viewer).", role)
	}
	ctx, hash := c.UserContext(), ""
	var err error
	switch {
	case a.Local != nil:
		if hash, err = auth.HashPassword(password); err != nil {
			return nil, err
		}
		userID = ""
	case a.Remote == nil:
		return nil, models.Errorf(models.ENOTIMPLEMENTED, "Staff cannot be created here: SUPABASE_SERVICE_ROLE_KEY is not set.")
	case userID != "":
		err = a.Remote.SetRole(ctx, userID, role)
	case password != "":
		userID, err = a.Remote.Create(ctx, email, password, role)
	default:
		userID, err = a.Remote.Invite(ctx, email, role)
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
		err := a.within(c, "staff.role_change", "staff", id, map[string]any{"from": string(u.Role), "to": string(*role)},
			func(tx *gorm.DB, _ *models.AuditEvent) error {
				if err := admin.SetRole(ctx, tx, id, *role); err != nil {
					return err
				}
				if a.Remote != nil { // mirrored into app_metadata.role
					return a.Remote.SetRole(ctx, id, *role)
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
	}
	if active != nil && *active != u.Active {
		action := "staff.reactivate"
		if !*active {
			action = "staff.deactivate"
		}
		err := a.within(c, action, "staff", id, nil, func(tx *gorm.DB, _ *models.AuditEvent) error {
			if err := admin.SetActive(ctx, tx, id, *active); err != nil {
				return err
			}
			if a.Remote != nil { // a deactivated member cannot sign in at Supabase either
				if err := a.Remote.SetBanned(ctx, id, !*active); err != nil {
					return err
				}
			}
			if !*active && a.Sessions != nil {
				return a.Sessions.RevokeUser(ctx, id)
			}
			return nil
		})
		if err != nil {
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
		if a.Remote != nil {
			if err := a.Remote.Delete(ctx, id); err != nil {
				return err
			}
		}
		err = a.within(c, "staff.delete", "staff", id, map[string]any{"email_fp": a.fingerprint(u.Email)},
			func(tx *gorm.DB, _ *models.AuditEvent) error { return admin.ForgetIn(ctx, tx, id) })
		if err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
