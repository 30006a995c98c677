package meta_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/meta/metatest"
	"github.com/parley-chat/parley/models"
)

func fakeClient(t *testing.T, api *metatest.API) *meta.Client {
	t.Helper()
	c, err := meta.NewClient(meta.Config{AccessToken: metatest.Token, PhoneNumberID: metatest.PhoneNumberID, BaseURL: api.BaseURL(), WABAID: metatest.WABAID})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A template goes out as type template with its language and body
// parameters, numbered ones in order, named ones with parameter_name.
func TestClient_SendTemplate_WithParameters(t *testing.T) {
	api := metatest.New(t)
	api.AddTemplate(metatest.Template{ID: "1", Name: "appointment_reminder", Language: "en", Status: "APPROVED", Body: "Hi {{1}}, see you at {{2}}."})
	api.AddTemplate(metatest.Template{ID: "2", Name: "results_ready", Language: "hi", Status: "APPROVED", Body: "{{name}}: {{test}}"})
	c := fakeClient(t, api)
	ctx := context.Background()
	ten := map[string]string{"10": "j", "2": "b", "1": "a", "3": "c", "4": "d", "5": "e", "6": "f", "7": "g", "8": "h", "9": "i"}
	api.AddTemplate(metatest.Template{ID: "3", Name: "ten", Language: "en", Status: "APPROVED", Body: "{{1}}{{2}}{{3}}{{4}}{{5}}{{6}}{{7}}{{8}}{{9}}{{10}}"})
	for _, ref := range []*models.TemplateRef{
		{Name: "appointment_reminder", Language: "en", Params: map[string]string{"2": "10:00", "1": "Asha"}},
		{Name: "results_ready", Language: "hi", Params: map[string]string{"test": "CBC", "name": "Asha"}},
		{Name: "ten", Language: "en", Params: ten},
	} {
		if _, err := c.Send(ctx, channel.Outbound{To: "whatsapp:+919876543210", Body: "rendered", Template: ref}); err != nil {
			t.Fatalf("Send %s: %v", ref.Name, err)
		}
	}
	sent := api.Sent()
	if len(sent) != 3 {
		t.Fatalf("sent %d, want 3", len(sent))
	}
	if s := sent[0]; s.Template != "appointment_reminder" || s.Language != "en" || !slices.Equal(s.Params, []string{"Asha", "10:00"}) || s.Body != "Hi Asha, see you at 10:00." || s.To != "919876543210" {
		t.Errorf("numbered = %+v", s)
	}
	if s := sent[1]; !slices.Equal(s.Params, []string{"name=Asha", "test=CBC"}) || s.Body != "Asha: CBC" {
		t.Errorf("named = %+v", s)
	}
	if s := sent[2]; s.Body != "abcdefghij" {
		t.Errorf("ten numbered parameters in order 1..10 = %q", s.Body)
	}
}

// Each refusal that matters comes back told apart, with a reason a person
// can act on, as the Cloud API answers it.
func TestClient_SendTemplate_ErrorsToldApart(t *testing.T) {
	api := metatest.New(t)
	api.AddTemplate(metatest.Template{ID: "1", Name: "reminder", Language: "en", Status: "APPROVED", Body: "Hi {{1}}"})
	api.AddTemplate(metatest.Template{ID: "2", Name: "waiting", Language: "en", Status: "PENDING", Body: "x"})
	api.AddTemplate(metatest.Template{ID: "3", Name: "paused", Language: "en", Status: "PAUSED", Body: "x"})
	api.AddTemplate(metatest.Template{ID: "4", Name: "disabled", Language: "en", Status: "DISABLED", Body: "x"})
	c := fakeClient(t, api)
	ok := &models.TemplateRef{Name: "reminder", Language: "en", Params: map[string]string{"1": "Asha"}}
	cases := []struct {
		label     string
		fail      *metatest.Failure
		ref       *models.TemplateRef
		code      string
		reason    string
		throttled bool
		window    bool
	}{
		{"unknown name", nil, &models.TemplateRef{Name: "nope", Language: "en"}, "132001", "no approved template of this name", false, false},
		{"wrong language", nil, &models.TemplateRef{Name: "reminder", Language: "hi", Params: map[string]string{"1": "A"}}, "132001", "in this language", false, false},
		{"not approved yet", nil, &models.TemplateRef{Name: "waiting", Language: "en"}, "132001", "wait for its approval", false, false},
		{"paused", nil, &models.TemplateRef{Name: "paused", Language: "en"}, "132015", "paused", false, false},
		{"disabled", nil, &models.TemplateRef{Name: "disabled", Language: "en"}, "132016", "disabled", false, false},
		{"parameter count", nil, &models.TemplateRef{Name: "reminder", Language: "en"}, "132000", "parameters do not match", false, false},
		{"not on WhatsApp", &metatest.NotOnWhatsApp, ok, "131026", "not on WhatsApp", false, false},
		{"re-engagement", &metatest.ReEngagement, ok, "131047", "More than 24 hours", false, true},
		{"throughput", &metatest.Throughput, ok, "130429", "rate limiting", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.label, func(t *testing.T) {
			if tc.fail != nil {
				api.FailNext(*tc.fail)
			}
			_, err := c.Send(context.Background(), channel.Outbound{To: "whatsapp:+919876543210", Body: "x", Template: tc.ref})
			se := channel.AsSendError(err)
			if se == nil || se.Code != tc.code || !strings.Contains(se.Reason, tc.reason) || se.Throttled != tc.throttled || se.Retryable != tc.throttled || se.Window != tc.window {
				t.Fatalf("error = %+v; want code %s, reason with %q", se, tc.code, tc.reason)
			}
		})
	}
	if n := len(api.Sent()); n != 0 {
		t.Fatalf("%d refused sends recorded as sent", n)
	}
}

// The listing follows the cursors over every page and maps statuses,
// categories, headers and rejection reasons.
func TestClient_Templates_PagesThroughTheList(t *testing.T) {
	api := metatest.New(t)
	statuses := []string{"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"}
	for i, s := range statuses {
		tpl := metatest.Template{ID: string(rune('1' + i)), Name: "t" + string(rune('a'+i)), Language: "en", Status: s, Category: "UTILITY", Body: "Hi {{1}}"}
		if s == "REJECTED" {
			tpl.RejectedReason = "INVALID_FORMAT"
		}
		if i == 0 {
			tpl.Header = "Reminder"
		}
		api.AddTemplate(tpl)
	}
	api.PageSize = 2
	c, err := meta.NewClient(meta.Config{AccessToken: metatest.Token, PhoneNumberID: metatest.PhoneNumberID, BaseURL: api.BaseURL(), WABAID: metatest.WABAID})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Templates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || api.TemplatePages != 3 {
		t.Fatalf("listed %d over %d pages, want 5 over 3", len(list), api.TemplatePages)
	}
	want := []models.TemplateStatus{models.TemplateApproved, models.TemplatePending, models.TemplateRejected, models.TemplatePaused, models.TemplateDisabled}
	for i, tpl := range list {
		if tpl.Status != want[i] || tpl.Body != "Hi {{1}}" || tpl.Category != "UTILITY" || tpl.PlatformID == "" {
			t.Errorf("template %d = %+v", i, tpl)
		}
	}
	if list[0].HeaderFormat != "TEXT" || list[0].HeaderText != "Reminder" || list[2].RejectedReason != "INVALID_FORMAT" || list[1].RejectedReason != "" {
		t.Errorf("header or reason lost: %+v / %+v", list[0], list[2])
	}
}
