package main

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/channel/meta/metatest"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
)

// `parley templates sync` reads Meta's templates over several pages and
// Twilio's with their approvals; `list` shows them; a second sync after a
// template was deleted at Meta marks it gone and keeps it.
func TestTemplates_SyncThenList(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	graph := metatest.New(t)
	graph.PageSize = 2
	for _, tpl := range []metatest.Template{
		{ID: "11", Name: "appointment_reminder", Language: "en", Status: "APPROVED", Category: "UTILITY", Body: "Hi {{1}}, your appointment is at {{2}}."},
		{ID: "12", Name: "appointment_reminder", Language: "hi", Status: "PENDING", Category: "UTILITY", Body: "नमस्ते {{1}}"},
		{ID: "13", Name: "promo", Language: "en", Status: "REJECTED", RejectedReason: "PROMOTIONAL", Category: "MARKETING", Body: "Sale!"},
	} {
		graph.AddTemplate(tpl)
	}
	tw := twiliotest.NewAPI(e2eAccountSID, token)
	t.Cleanup(tw.Close)
	tw.AddContent(twiliotest.Content{SID: "HX00000000000000000000000000000001", FriendlyName: "results_ready", Language: "en", Body: "{{1}}, your results are ready.", Status: "approved", Category: "utility"})
	env := baseEnv(t, pgtest.DSN(t))
	env["PARLEY_META_ACCESS_TOKEN"], env["PARLEY_META_PHONE_NUMBER_ID"], env["PARLEY_META_API_BASE_URL"], env["PARLEY_META_WABA_ID"] =
		metatest.Token, metatest.PhoneNumberID, graph.BaseURL(), metatest.WABAID
	env["PARLEY_TWILIO_ACCOUNT_SID"], env["PARLEY_TWILIO_AUTH_TOKEN"], env["PARLEY_TWILIO_FROM"], env["PARLEY_TWILIO_API_BASE_URL"] =
		e2eAccountSID, token, "+15005550006", tw.URL
	env["PARLEY_PUBLIC_URL"] = "https://parley.example"

	code, out, stderr := runCmd(t, env, "templates", "sync")
	if code != exitOK || !strings.Contains(out, "meta: 3 templates listed, 0 no longer there") || !strings.Contains(out, "twilio: 1 templates listed") {
		t.Fatalf("sync = %d, %q, %q", code, out, stderr)
	}
	if graph.TemplatePages != 2 {
		t.Fatalf("Meta's list read in %d pages, want 2", graph.TemplatePages)
	}
	code, out, stderr = runCmd(t, env, "templates", "list")
	for _, want := range []string{"appointment_reminder  en        meta      approved", "rejected (PROMOTIONAL)", "results_ready", "twilio", "1,2"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("list = %d, %q (%q); want %q in it", code, out, stderr, want)
		}
	}
	graph.RemoveTemplate("promo", "en")
	if code, out, stderr := runCmd(t, env, "templates", "sync"); code != exitOK || !strings.Contains(out, "meta: 2 templates listed, 1 no longer there") {
		t.Fatalf("second sync = %d, %q, %q", code, out, stderr)
	}
	if _, out, _ := runCmd(t, env, "templates", "list"); !strings.Contains(out, "promo") || !strings.Contains(out, "gone") {
		t.Fatalf("a template deleted at Meta = %q; want kept, gone", out)
	}
	db := openDB(t, env["DATABASE_URL"])
	var audited int
	if err := db.Gorm.Raw(`SELECT count(*) FROM audit_events WHERE action = 'templates.sync'`).Scan(&audited).Error; err != nil || audited != 2 {
		t.Fatalf("audited syncs = %d, %v; want 2", audited, err)
	}
}

// With nowhere to read templates from, sync says which setting to give.
func TestTemplates_SyncNeedsAPlatform(t *testing.T) {
	env := baseEnv(t, pgtest.DSN(t))
	if code, _, stderr := runCmd(t, env, "templates", "sync"); code != exitUsage || !strings.Contains(stderr, "PARLEY_META_WABA_ID") {
		t.Fatalf("sync with no platform = %d, %q", code, stderr)
	}
}
