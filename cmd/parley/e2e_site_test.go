package main

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// consoleSite is `parley serve` with a fake Twilio and staff of each role
// (email role@example.org, one password), for the console's browser tests.
type consoleSite struct {
	base, token string
	fake        *twiliotest.API
	db          *store.DB
	sid         int // the last inbound message's number (its SID)
}

const sitePassword = "a long enough password"

func newConsoleSite(t *testing.T) *consoleSite {
	t.Helper()
	s := &consoleSite{token: "0123456789abcdef0123456789abcdef"}
	s.fake = twiliotest.NewAPI(e2eAccountSID, s.token)
	t.Cleanup(s.fake.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	s.base = "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": s.token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": s.fake.URL, "PARLEY_PUBLIC_URL": s.base, "PARLEY_DEFAULT_REGION": "IN"} {
		env[k] = v
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s.db = db
	hash, _ := auth.HashPassword(sitePassword)
	for _, role := range []models.Role{models.RoleAdmin, models.RoleSupervisor, models.RoleAgent, models.RoleViewer} {
		if _, err := store.NewStaffStore(db).Create(context.Background(), "", string(role)+"@example.org", role, hash); err != nil {
			t.Fatal(err)
		}
	}
	start(t, env, "serve")
	return s
}
