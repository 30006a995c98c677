package auth

import (
	"context"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/parley-chat/parley/models"
)

// MinPasswordLength is the shortest password a local account takes.
const MinPasswordLength = 12

// HashPassword returns the bcrypt hash of a local staff password.
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return "", models.Errorf(models.EINVALID, "A password needs at least %d characters.", MinPasswordLength)
	}
	if len(password) > 72 {
		return "", models.Errorf(models.EINVALID, "A password may have at most 72 bytes.")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// Directory finds staff members by email, with their password hash.
type Directory interface {
	// ByEmail returns ENOTFOUND when there is no such staff member.
	ByEmail(ctx context.Context, email string) (*models.StaffUser, string, error)
}

// ErrWrongCredentials is the one answer to a failed sign-in: it never says
// whether the account exists.
var ErrWrongCredentials = models.Errorf(models.EUNAUTHORIZED, "Wrong email or password.")

// decoy is compared against when no account matches, so a wrong email
// takes as long as a wrong password.
var decoy, _ = bcrypt.GenerateFromPassword([]byte("parley decoy password"), bcrypt.DefaultCost)

// CheckPassword signs a local staff member in: it returns them when the
// email names an active account whose password this is, and
// EUNAUTHORIZED ("Wrong email or password.") otherwise, however it failed.
func CheckPassword(ctx context.Context, dir Directory, email, password string) (*models.StaffUser, error) {
	u, hash, err := dir.ByEmail(ctx, email)
	switch {
	case models.ErrorCode(err) == models.ENOTFOUND || (err == nil && hash == ""):
		_ = bcrypt.CompareHashAndPassword(decoy, []byte(password))
		return nil, ErrWrongCredentials
	case err != nil:
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || !u.Active {
		return nil, ErrWrongCredentials
	}
	return u, nil
}
