package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
)

// `parley contacts export` writes the person's data decrypted; `erase`
// needs --yes, removes it, and after it nothing is found any more.
func TestContacts_ExportThenErase(t *testing.T) {
	ctx := context.Background()
	env := baseEnv(t, pgtest.DSN(t))
	cfg := testConfig(t, env)
	db := openDB(t, env["DATABASE_URL"])
	c, err := newCrypto(cfg, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	asha, _, err := store.NewContactStore(db, c).FindOrCreate(ctx, "whatsapp:+919876543210")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Inbound(t, db, c, asha, "my knee hurts")
	code, out, stderr := runCmd(t, env, "contacts", "export", "--phone", "+91 98765 43210")
	var exported []store.ContactExport
	if code != exitOK || json.Unmarshal([]byte(out), &exported) != nil || len(exported) != 1 ||
		len(exported[0].Messages) != 1 || exported[0].Messages[0].Body != "my knee hurts" || exported[0].Contact.Address != "+919876543210" {
		t.Fatalf("export = %d:\n%s\n%s", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, env, "contacts", "erase", "--phone", "+919876543210"); code != exitUsage || !strings.Contains(stderr, "--yes") {
		t.Fatalf("erase without --yes = %d %s", code, stderr)
	}
	if code, out, stderr := runCmd(t, env, "contacts", "erase", "--phone", "+919876543210", "--yes"); code != exitOK || !strings.Contains(out, "1 messages") {
		t.Fatalf("erase = %d %s %s", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, env, "contacts", "export", "--phone", "+919876543210"); code != exitFailure || !strings.Contains(stderr, "no contact") {
		t.Fatalf("export after the erasure = %d %s", code, stderr)
	}
	var actions []string
	rows, _ := db.Pool.Query(ctx, `SELECT action FROM audit_events WHERE action LIKE 'contact.%' ORDER BY seq`)
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		actions = append(actions, a)
	}
	rows.Close()
	if strings.Join(actions, ",") != "contact.export,contact.erase" {
		t.Fatalf("audited %v", actions)
	}
}

// A number typed as people write it in the UK is found with the region
// `parley dev` sets (and writes beside its database for other commands);
// without a region, the refusal says what to do.
func TestContacts_ExportReadsANationalNumberInTheRegion(t *testing.T) {
	ctx := context.Background()
	env := baseEnv(t, pgtest.DSN(t))
	cfg := testConfig(t, env)
	db := openDB(t, env["DATABASE_URL"])
	c, err := newCrypto(cfg, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.NewContactStore(db, c).FindOrCreate(ctx, "simulator:+447700901001"); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, env, "contacts", "export", "--phone", "07700 901001")
	if code != exitUsage || !strings.Contains(stderr, "PARLEY_DEFAULT_REGION is unset") {
		t.Fatalf("export without a region = %d %s", code, stderr)
	}
	env["PARLEY_DEFAULT_REGION"] = devRegion
	code, out, stderr := runCmd(t, env, "contacts", "export", "--phone", "07700 901001")
	if code != exitOK || !strings.Contains(out, `"+447700901001"`) {
		t.Fatalf("export in %s = %d\n%s\n%s", devRegion, code, out, stderr)
	}
}
