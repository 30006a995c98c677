package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/pgcluster"
	"github.com/parley-chat/parley/models"
)

// pgDump is the fixture's whole database as pg_dump writes it (plain SQL,
// one INSERT per row, bytea as hex).
func pgDump(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	var dsn string
	if err := f.db.Gorm.WithContext(ctx).Raw("SELECT current_database()").Scan(&dsn).Error; err != nil {
		t.Fatal(err)
	}
	bin, err := pgcluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.db.Pool.Config().ConnConfig
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), "--no-owner", "--inserts",
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, dsn)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.String())
	}
	return out.String()
}

func TestPgDump_HoldsNoPersonalDataInAnyForm(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "whatsapp:+919876543210", "Asha Verma")
	f.message(t, c, "I need an appointment on Monday")
	f.message(t, c, "मेरा नाम आशा है")
	hindiName := f.contact(t, "+14155550100", "प्रिया")
	f.message(t, hindiName, "Priyaappointmentxyz")
	if err := f.db.Gorm.Exec("UPDATE messages SET status = ? WHERE contact_id = ?", models.StatusProcessed, c.ID).Error; err != nil {
		t.Fatal(err)
	}

	dump := pgDump(t, f)
	if !strings.Contains(dump, "INSERT INTO public.messages") {
		t.Fatal("the dump holds no messages: the test would prove nothing")
	}
	secrets := []string{
		"+919876543210", "919876543210", "9876543210", "98765 43210", "4155550100",
		"Asha Verma", "asha verma", "ASHA", "Asha", "asha", "Verma", "verma",
		"appointment", "Appointment", "Monday", "monday", "Priyaappointmentxyz",
		"आशा", "प्रिया", "मेरा",
	}
	lower := strings.ToLower(dump)
	for _, s := range secrets {
		for _, form := range []string{s, strings.ToLower(s), hex.EncodeToString([]byte(s)), hex.EncodeToString([]byte(strings.ToLower(s)))} {
			if strings.Contains(dump, form) || strings.Contains(lower, strings.ToLower(form)) {
				t.Errorf("pg_dump contains %q (as %q)", s, form)
			}
		}
	}
}
