package handlers

import (
	"context"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/accounts"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// StaffAdmin manages staff accounts (store.StaffStore): the lookups and
// lists the pages read, and the changes accounts.Service makes.
type StaffAdmin interface {
	StaffLookup
	accounts.Store
	List(ctx context.Context, after string, limit int) ([]*models.StaffUser, error)
}

// RemoteUsers is Supabase Auth's user administration (auth.GoTrueAdmin):
// nil in local mode.
type RemoteUsers = accounts.Remote

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
		u, err := a.accounts(admin).Create(c.UserContext(), actorOf(c), accounts.NewMember{Email: in.Email, Role: in.Role, Password: in.Password, UserID: in.UserID})
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
		u, err := a.accounts(admin).Change(c.UserContext(), actorOf(c), c.Params("id"), in.Role, in.Active)
		if err != nil {
			return err
		}
		return c.JSON(staffOut(u))
	})
}

// accounts is the one service that changes staff accounts, for the
// console's and the API's handlers alike (and `parley users`).
func (a *Access) accounts(admin StaffAdmin) *accounts.Service {
	svc := &accounts.Service{Staff: admin, Remote: a.Remote, Local: a.Local != nil}
	if a.Audit != nil {
		svc.Audit = a.Audit
	}
	return svc
}

// deleteStaff removes an account for good (accounts.Service.Delete).
func (a *Access) deleteStaff(admin StaffAdmin) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := a.accounts(admin).Delete(c.UserContext(), actorOf(c), c.Params("id")); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
