package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"parley"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKeysGenerate_OutputIsAcceptedByTheConfiguration(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://u@localhost/x"}
	for setting, kind := range map[string]string{
		"PARLEY_ENCRYPTION_KEYS": "encryption",
		"PARLEY_BLIND_INDEX_KEY": "blind-index",
		"PARLEY_SESSION_KEYS":    "session",
	} {
		code, out, stderr := runCmd(t, nil, "keys", "generate", kind)
		if code != exitOK {
			t.Fatalf("keys generate %s = %d: %s", kind, code, stderr)
		}
		env[setting] = strings.TrimSpace(out)
	}
	if _, err := config.Load(func(k string) string { return env[k] }, config.Requirements{Database: true, Keys: true}); err != nil {
		t.Fatalf("generated keys rejected: %v", err)
	}
	_, a, _ := runCmd(t, nil, "keys", "generate")
	_, b, _ := runCmd(t, nil, "keys", "generate")
	if a == b {
		t.Fatal("two generated keys are equal")
	}
}

func TestKeysRotateAndStatus(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	oldKey := env["PARLEY_ENCRYPTION_KEYS"]

	// Data sealed under the old key.
	cfg, err := config.Load(func(k string) string { return env[k] }, config.Requirements{Database: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCrypto(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	contact, _, err := store.NewContactStore(db, c).FindOrCreate(context.Background(), "+919876543210")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		storetest.Inbound(t, db, c, contact, "hello")
	}
	oldID := c.Ring.ActiveKeyID()

	code, out, stderr := runCmd(t, env, "keys", "status")
	if code != exitOK || !statusLine(out, "messages.body_enc", oldID, 3) {
		t.Fatalf("keys status = %d\n%s%s", code, out, stderr)
	}

	newKey := newEncryptionKey()
	newID, _, _ := strings.Cut(newKey, ":")
	env["PARLEY_ENCRYPTION_KEYS"] = newKey + "," + oldKey
	code, _, stderr = runCmd(t, env, "keys", "rotate")
	if code != exitOK || !strings.Contains(stderr, "now under key "+newID) {
		t.Fatalf("keys rotate = %d: %s", code, stderr)
	}
	var audited string
	_ = db.Pool.QueryRow(context.Background(), `SELECT string_agg(action || ':' || subject_id, ',' ORDER BY seq) FROM audit_events`).Scan(&audited)
	if audited != "keys.rotation_started:"+newID+",keys.rotated:"+newID {
		t.Errorf("audited %q", audited)
	}
	code, out, _ = runCmd(t, env, "keys", "status")
	if code != exitOK || strings.Contains(out, oldID) || !statusLine(out, "messages.body_enc", newID, 3) || !statusLine(out, "contacts.address_enc", newID, 1) || !strings.Contains(out, "finished") {
		t.Fatalf("keys status after rotation = %d\n%s", code, out)
	}
}

func statusLine(out, column, keyID string, n int) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(column) + `\s+` + regexp.QuoteMeta(keyID) + `\s+` + strconv.Itoa(n) + `$`).MatchString(out)
}
