package auth

import (
	"context"

	"github.com/parley-chat/parley/models"
)

// SupabaseUsers is a project's Auth as the sign-in upkeep jobs use it:
// ending a session there later, and asking after a user's standing.
type SupabaseUsers struct {
	Auth  *GoTrue
	Admin *GoTrueAdmin // nil without the service-role key
}

// SignOut ends the session the access token belongs to (GoTrue.SignOut).
func (u SupabaseUsers) SignOut(ctx context.Context, accessToken string) error {
	return u.Auth.SignOut(ctx, accessToken)
}

// RefreshAccess trades a refresh token for a fresh access token.
// Errors: EUNAUTHORIZED (Supabase no longer knows it), EUNAVAILABLE.
func (u SupabaseUsers) RefreshAccess(ctx context.Context, refreshToken string) (string, error) {
	se, err := u.Auth.Refresh(ctx, refreshToken)
	return se.AccessToken, err
}

// Standing says whether the user was deleted or is banned. Errors:
// ENOTIMPLEMENTED without the admin API, EUNAVAILABLE, EINVALID.
func (u SupabaseUsers) Standing(ctx context.Context, id string) (gone, banned bool, err error) {
	if u.Admin == nil {
		return false, false, models.Errorf(models.ENOTIMPLEMENTED, "Set SUPABASE_SERVICE_ROLE_KEY to re-check staff at Supabase.")
	}
	st, err := u.Admin.Standing(ctx, id)
	return st.Gone, st.Banned, err
}
