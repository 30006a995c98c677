package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Supervisors and admins see the template registry with each template's
// status and why one cannot be sent; agents and viewers neither see the
// link nor open the page.
func TestTemplatesPage(t *testing.T) {
	site := newConsoleSite(t, nil)
	supervisor := site.as(t, models.RoleSupervisor)
	if _, page := supervisor.do(t, "GET", "/templates", nil, nil); !strings.Contains(page, `data-testid="templates-empty"`) {
		t.Fatalf("empty registry:\n%s", page)
	}
	list := []models.Template{
		{PlatformID: "1", Name: "appointment_reminder", Language: "en", Category: "UTILITY", Body: "Hi {{1}}, see you at {{2}}.", Status: models.TemplateApproved,
			HeaderFormat: "TEXT", HeaderText: "Reminder", Buttons: []models.TemplateButton{{Type: "QUICK_REPLY", Text: "Confirm"}}},
		{PlatformID: "2", Name: "promo", Language: "en", Category: "MARKETING", Body: "<b>Sale</b>", Status: models.TemplateRejected, RejectedReason: "PROMOTIONAL"},
	}
	if _, err := store.NewTemplateStore(site.db).Sync(context.Background(), "meta", list, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, page := supervisor.do(t, "GET", "/templates", nil, nil)
	if resp.StatusCode != 200 || strings.Count(page, `data-testid="template"`) != 2 || !strings.Contains(page, `data-testid="nav-t"`) {
		t.Fatalf("templates page: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`data-status="approved"`, "2 parameters", "header TEXT: Reminder", "buttons: Confirm", `data-status="rejected"`, "PROMOTIONAL", "&lt;b&gt;Sale&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("templates page lacks %q", want)
		}
	}
	if _, page := site.as(t, models.RoleAdmin).do(t, "GET", "/templates", nil, nil); strings.Count(page, `data-testid="template"`) != 2 {
		t.Fatal("an admin does not see the templates")
	}
	for _, role := range []models.Role{models.RoleAgent, models.RoleViewer} {
		member := site.as(t, role)
		if resp, _ := member.do(t, "GET", "/templates", nil, nil); resp.StatusCode != 403 {
			t.Errorf("%s opened the templates page: %d", role, resp.StatusCode)
		}
		if _, page := member.do(t, "GET", "/", nil, nil); strings.Contains(page, `href="/templates"`) {
			t.Errorf("%s is shown the templates link", role)
		}
	}
}
