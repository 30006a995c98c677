package twilio_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const accountSID = "AC00000000000000000000000000000001"

func contentSID(n int) string { return "HX" + strings.Repeat("0", 31) + string(rune('0'+n)) }

// The listing reads every page of the Content API and each template's
// WhatsApp approval, through twilio-go.
func TestClient_Templates_PagesAndApprovalStates(t *testing.T) {
	api := twiliotest.NewAPI(accountSID, "token")
	defer api.Close()
	for i, st := range []string{"approved", "pending", "rejected", "paused", ""} {
		api.AddContent(twiliotest.Content{SID: contentSID(i), FriendlyName: "t" + string(rune('a'+i)), Language: "en", Body: "Hi {{1}}",
			Status: st, Category: "utility", RejectionReason: map[bool]string{true: "Variables can't be at the start"}[st == "rejected"]})
	}
	api.ContentPageSize = 2
	c, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: "token", From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Templates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || api.ContentPages != 3 {
		t.Fatalf("listed %d over %d pages, want 5 over 3", len(list), api.ContentPages)
	}
	want := []models.TemplateStatus{models.TemplateApproved, models.TemplatePending, models.TemplateRejected, models.TemplatePaused, models.TemplateRejected}
	for i, tpl := range list {
		if tpl.Status != want[i] || tpl.PlatformID != contentSID(i) || tpl.Body != "Hi {{1}}" || tpl.Language != "en" || tpl.Provider != "twilio" {
			t.Errorf("template %d = %+v, want status %s", i, tpl, want[i])
		}
	}
	if list[0].Category != "UTILITY" || list[2].RejectedReason != "Variables can't be at the start" || !strings.Contains(list[4].RejectedReason, "not submitted") {
		t.Errorf("category or reasons lost: %+v %+v %+v", list[0], list[2], list[4])
	}
}

// A WhatsApp template goes out as ContentSid (read from the registry by
// name and language) with ContentVariables; the same message by SMS goes
// as its text. Refusals are told apart: Parley's own before any call
// (not in the registry, not approved there, parameters), and Twilio's.
func TestClient_SendTemplate_ThroughTheRegistry(t *testing.T) {
	api := twiliotest.NewAPI(accountSID, "token")
	defer api.Close()
	api.AddContent(twiliotest.Content{SID: contentSID(1), FriendlyName: "appointment_reminder", Language: "en", Body: "Hi {{1}}, see you at {{2}}.", Status: "approved"})
	api.AddContent(twiliotest.Content{SID: contentSID(2), FriendlyName: "waiting", Language: "en", Body: "x", Status: "pending"})
	api.AddContent(twiliotest.Content{SID: contentSID(3), FriendlyName: "changed", Language: "en", Body: "{{1}} {{2}}", Status: "approved"})
	db := pgtest.Open(t)
	reg := store.NewTemplateStore(db)
	ctx := context.Background()
	plain, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: "token", From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	synced, err := plain.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The registry as it stood at the last sync: "changed" had one
	// parameter then, and "gone_since" was deleted at Twilio since.
	for i := range synced {
		if synced[i].Name == "changed" {
			synced[i].Body = "{{1}}"
		}
	}
	synced = append(synced, models.Template{PlatformID: contentSID(9), Name: "gone_since", Language: "en", Body: "x", Status: models.TemplateApproved})
	if _, err := reg.Sync(ctx, "twilio", synced, time.Now()); err != nil {
		t.Fatal(err)
	}
	c, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: "token", From: "+15005550006", APIBaseURL: api.URL, Templates: reg})
	if err != nil {
		t.Fatal(err)
	}
	reminder := &models.TemplateRef{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "Asha", "2": "10:00"}}
	if _, err := c.Send(ctx, channel.Outbound{To: "whatsapp:+14155550100", Body: "Hi Asha, see you at 10:00.", Template: reminder}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, channel.Outbound{To: "+14155550100", Body: "Hi Asha, see you at 10:00.", Template: reminder}); err != nil {
		t.Fatal(err)
	}
	sent := api.Sent()
	if len(sent) != 2 {
		t.Fatalf("sent %d, want 2", len(sent))
	}
	if s := sent[0]; s.ContentSID != contentSID(1) || s.ContentVariables != `{"1":"Asha","2":"10:00"}` || s.Body != "Hi Asha, see you at 10:00." || s.From != "whatsapp:+15005550006" {
		t.Errorf("WhatsApp template send = %+v", s)
	}
	if s := sent[1]; s.ContentSID != "" || s.Body != "Hi Asha, see you at 10:00." {
		t.Errorf("SMS send of a template = %+v, want its text plainly", s)
	}

	cases := []struct {
		label  string
		client *twilio.Client
		fail   *twiliotest.Failure
		ref    *models.TemplateRef
		code   string
		reason string
		window bool
	}{
		{"no registry", plain, nil, reminder, channel.CodeTemplateMissing, "not in the template registry", false},
		{"not in the registry", c, nil, &models.TemplateRef{Name: "nope", Language: "en"}, channel.CodeTemplateMissing, "parley templates sync", false},
		{"not approved", c, nil, &models.TemplateRef{Name: "waiting", Language: "en", Params: map[string]string{}}, channel.CodeTemplateNotApproved, "waiting for WhatsApp's approval", false},
		{"parameters, told before the call", c, nil, &models.TemplateRef{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "Asha"}}, channel.CodeTemplateParams, "{{2}} not filled", false},
		{"parameters, told by Twilio", c, nil, &models.TemplateRef{Name: "changed", Language: "en", Params: map[string]string{"1": "a"}}, "63028", "parameters do not match", false},
		{"deleted at Twilio", c, nil, &models.TemplateRef{Name: "gone_since", Language: "en"}, "21655", "parley templates sync", false},
		{"not on WhatsApp", c, &twiliotest.Failure{HTTPStatus: 400, Code: 63003, Message: "Channel could not find To address"}, reminder, "63003", "not on WhatsApp", false},
		{"outside the window", c, &twiliotest.Failure{HTTPStatus: 400, Code: 63016, Message: "Failed to send freeform message because you are outside the allowed window."}, reminder, "63016", "More than 24 hours", true},
	}
	for _, tc := range cases {
		t.Run(tc.label, func(t *testing.T) {
			if tc.fail != nil {
				api.FailNext(*tc.fail)
			}
			_, err := tc.client.Send(ctx, channel.Outbound{To: "whatsapp:+14155550100", Body: "x", Template: tc.ref})
			se := channel.AsSendError(err)
			if se == nil || se.Code != tc.code || !strings.Contains(se.Reason, tc.reason) || se.Retryable || se.Window != tc.window {
				t.Fatalf("error = %+v; want code %s, reason with %q", se, tc.code, tc.reason)
			}
			if strings.Contains(se.Reason, "Asha") || strings.Contains(se.Reason, "4155550100") {
				t.Fatalf("the reason quotes personal data: %q", se.Reason)
			}
		})
	}
	if n := len(api.Sent()); n != 2 {
		t.Fatalf("%d sent after the refusals, want the 2 before", n)
	}
}
