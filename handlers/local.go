package handlers

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// LocalProvider is the development sign-in (PARLEY_AUTH_MODE=local): staff
// accounts in Parley's own table, served on the routes and in the shapes
// of Supabase Auth (GoTrue), so clients and the verifier work alike in
// both modes.
type LocalProvider struct {
	Issuer    *auth.LocalIssuer
	Directory auth.Directory
	Guard     *auth.Guard // limits failed sign-ins (auth.NewGuard when nil)
	access    *Access     // for the audit
}

func (l *LocalProvider) register(app *fiber.App) {
	if l.Guard == nil {
		l.Guard = auth.NewGuard()
	}
	app.Get("/auth/v1/.well-known/jwks.json", l.jwks)
	app.Post("/auth/v1/token", l.token)
}

func (l *LocalProvider) jwks(c *fiber.Ctx) error {
	body, err := l.Issuer.JWKS(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=600")
	c.Type("json")
	return c.Send(body)
}

// gotrueError answers as GoTrue does: {code, error_code, msg}.
func gotrueError(c *fiber.Ctx, status int, code, msg string) error {
	return c.Status(status).JSON(fiber.Map{"code": status, "error_code": code, "msg": msg})
}

// token is GoTrue's POST /token?grant_type=password.
func (l *LocalProvider) token(c *fiber.Ctx) error {
	if c.Query("grant_type") != "password" {
		return gotrueError(c, fiber.StatusBadRequest, "unsupported_grant_type", "Only the password grant is supported here.")
	}
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := c.BodyParser(&in); err != nil || in.Email == "" || in.Password == "" {
		return gotrueError(c, fiber.StatusBadRequest, "validation_failed", "An email and a password are required.")
	}
	defer boundSignIn(c)()
	u, err := l.SignIn(c.UserContext(), in.Email, in.Password, c.IP())
	if failed, throttled := signInFailure(err); failed {
		if aerr := l.access.signInFailed(c, in.Email, "api", throttled); aerr != nil {
			return aerr
		}
	}
	switch models.ErrorCode(err) {
	case "":
		if err := l.access.record(c, u, "staff.sign_in", "staff", u.ID, map[string]any{"via": "api"}); err != nil {
			return err
		}
	case models.EUNAVAILABLE:
		if status := unavailableStatus(c, err); status != fiber.StatusTooManyRequests {
			return gotrueError(c, status, "unexpected_failure", models.ErrorMessage(err))
		}
		return gotrueError(c, fiber.StatusTooManyRequests, "over_request_rate_limit", models.ErrorMessage(err))
	case models.EUNAUTHORIZED:
		return gotrueError(c, fiber.StatusBadRequest, "invalid_credentials", "Invalid login credentials")
	default:
		return err
	}
	access, exp, err := l.Issuer.Issue(u, "")
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"access_token": access, "token_type": "bearer", "expires_in": int(time.Until(exp).Seconds()), "expires_at": exp.Unix(),
		"refresh_token": "", "user": fiber.Map{"id": u.ID, "email": u.Email, "aud": auth.Audience, "role": "authenticated",
			"app_metadata": fiber.Map{"provider": "email", "role": u.Role}},
	})
}

// SignIn checks a local staff member's password, limiting failures per
// account and per address; it never says whether the account exists.
// Errors: EUNAUTHORIZED (wrong email or password), EUNAVAILABLE (too many
// failures: wait).
func (l *LocalProvider) SignIn(ctx context.Context, email, password, ip string) (*models.StaffUser, error) {
	var u *models.StaffUser
	err := l.Guard.Try(ctx, email, ip, func() (err error) {
		u, err = auth.CheckPassword(ctx, l.Directory, email, password)
		return err
	})
	return u, err
}
