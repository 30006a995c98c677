// Package auth answers "who is this, and may they?" for the console and
// the JSON API alike: it verifies Supabase Auth access tokens (and those of
// the local development provider, which have the same shape), and holds
// the one table of what each staff role may do.
package auth

import (
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/models"
)

// Audience is the audience of every Supabase access token.
const Audience = "authenticated"

// Claims are the access token claims Parley reads. The application role is
// never taken from UserMetadata, which the user can write.
type Claims struct {
	jwt.RegisteredClaims
	Email        string         `json:"email,omitempty"`
	Role         string         `json:"role,omitempty"` // the Postgres role, "authenticated": not Parley's
	SessionID    string         `json:"session_id,omitempty"`
	AppMetadata  map[string]any `json:"app_metadata,omitempty"`
	UserMetadata map[string]any `json:"user_metadata,omitempty"`
}

// Principal is a signed-in staff member as a request sees them: who, with
// which role, read from Parley's staff table at each request so a role
// change or a deactivation takes effect at once.
type Principal struct {
	UserID    string
	Email     string
	Role      models.Role
	SessionID string // the token's session, when it names one
}
