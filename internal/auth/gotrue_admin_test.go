package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Only GoTrue's own user_not_found says a user was deleted. A 404 from
// anything else (SUPABASE_URL pointing at the wrong place, a proxy's page)
// is an outage: a misconfigured URL must not read as every staff member
// deleted.
func TestGoTrueAdmin_StandingGoneOnlyOnUserNotFound(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		gone       bool
		code       string
	}{
		{"GoTrue's user_not_found", `{"code":404,"error_code":"user_not_found","msg":"User not found"}`, true, ""},
		{"a plain 404 page", `404 page not found`, false, models.EUNAVAILABLE},
		{"another JSON 404", `{"message":"no Route matched with those values"}`, false, models.EUNAVAILABLE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			admin := auth.NewGoTrue(srv.URL, "anon", nil).Admin("service")
			st, err := admin.Standing(t.Context(), uuid.NewString())
			if st.Gone != tc.gone || models.ErrorCode(err) != tc.code {
				t.Fatalf("standing %+v, %v; want gone=%v, code %q", st, err, tc.gone, tc.code)
			}
		})
	}
}
