package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// A second sync updates what changed and marks what the platform no
// longer lists gone, keeping it; another provider's templates are not
// touched.
func TestTemplateStore_Sync_UpdatesAndMarksGone(t *testing.T) {
	f := newFixture(t)
	ts := store.NewTemplateStore(f.db)
	ctx := context.Background()
	if synced, err := ts.Synced(ctx); err != nil || synced {
		t.Fatalf("Synced before any sync = %v, %v", synced, err)
	}
	first := []models.Template{
		{PlatformID: "1", Name: "appointment_reminder", Language: "en", Category: "UTILITY", Body: "Hi {{1}}, see you at {{2}}.", Status: models.TemplatePending,
			Buttons: []models.TemplateButton{{Type: "QUICK_REPLY", Text: "OK"}}},
		{PlatformID: "2", Name: "results_ready", Language: "en", Category: "UTILITY", Body: "Your results are ready.", Status: models.TemplateApproved},
	}
	if res, err := ts.Sync(ctx, "meta", first, time.Now()); err != nil || res.Seen != 2 || res.Gone != 0 {
		t.Fatalf("first sync = %+v, %v", res, err)
	}
	if _, err := ts.Sync(ctx, "twilio", []models.Template{{PlatformID: "HX1", Name: "results_ready", Language: "en", Status: models.TemplateApproved}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	second := []models.Template{{PlatformID: "1", Name: "appointment_reminder", Language: "en", Category: "UTILITY", Body: "Hi {{1}}, see you at {{2}}.", Status: models.TemplateApproved}}
	if res, err := ts.Sync(ctx, "meta", second, time.Now()); err != nil || res.Gone != 1 {
		t.Fatalf("second sync = %+v, %v; want one gone", res, err)
	}
	got, err := ts.Find(ctx, "meta", "appointment_reminder", "en")
	if err != nil || got.Status != models.TemplateApproved || got.Body != "Hi {{1}}, see you at {{2}}." || len(got.Buttons) != 0 {
		t.Fatalf("Find = %+v, %v; want approved, buttons replaced", got, err)
	}
	if gone, err := ts.Find(ctx, "meta", "results_ready", "en"); err != nil || gone.Status != models.TemplateGone {
		t.Fatalf("a template no longer listed = %+v, %v; want kept, gone", gone, err)
	}
	if other, err := ts.Find(ctx, "twilio", "results_ready", "en"); err != nil || other.Status != models.TemplateApproved {
		t.Fatalf("another provider's template = %+v, %v; want untouched", other, err)
	}
	if _, err := ts.Find(ctx, "meta", "nope", "en"); models.ErrorCode(err) != models.ENOTFOUND {
		t.Fatalf("Find of a missing template: %v, want ENOTFOUND", err)
	}
	list, err := ts.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	if synced, err := ts.Synced(ctx); err != nil || !synced {
		t.Fatalf("Synced after a sync = %v, %v", synced, err)
	}
}
