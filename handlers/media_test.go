package handlers_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// A photo and a voice note show in the conversation as a picture and a
// player; each opening is audited; a type the console does not know is a
// download, never rendered.
func TestInbox_MediaPreviews(t *testing.T) {
	site := newConsoleSite(t, nil)
	ctx := context.Background()
	_, ravi := site.seed(t)
	media := store.NewMediaStore(site.db, site.crypto)
	m := storetest.Inbound(t, site.db, site.crypto, ravi, "my card")
	photo, err := os.ReadFile("testdata/appointment-card.jpg")
	if err != nil {
		t.Fatal(err)
	}
	voice, err := os.ReadFile("testdata/voice-note-en.ogg")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for i, a := range []struct {
		name, typ string
		data      []byte
	}{{"photo", "image/jpeg", photo}, {"voice", "audio/ogg; codecs=opus", voice}, {"page", "text/html", []byte("<script>alert(1)</script>")}, {"pending", "image/png", nil}} {
		id, err := media.Add(ctx, nil, m.ID, i, "https://api.twilio.com/media/"+a.name, a.typ)
		if err != nil {
			t.Fatal(err)
		}
		if a.data != nil {
			if err := media.Save(ctx, id, a.typ, a.data); err != nil {
				t.Fatal(err)
			}
		}
		ids[a.name] = id
	}
	// What was understood shows under each: the transcript, the
	// description, or why not.
	_ = media.Understand(ctx, ids["voice"], "My name is Asha", "en-IN")
	_ = media.Understand(ctx, ids["photo"], "An appointment card for Asha Verma.", "")
	other, _ := media.Add(ctx, nil, m.ID, 9, "https://api.twilio.com/media/other", "audio/ogg")
	_ = media.Save(ctx, other, "audio/ogg", voice)
	_ = media.NotUnderstood(ctx, other, "Could not be transcribed: sarvam the service failed (HTTP 503).")
	viewer := site.as(t, models.RoleViewer)
	_, page := viewer.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil)
	for _, want := range []string{`<img src="/media/` + itoa(ids["photo"]) + `"`, `<audio controls preload="metadata" src="/media/` + itoa(ids["voice"]) + `"`,
		`data-testid="media-file"`, "is being fetched", "“My name is Asha”", "(en-IN)", "Seen: An appointment card for Asha Verma.",
		"Could not be transcribed: sarvam the service failed (HTTP 503). The flow went on without it."} {
		if !strings.Contains(page, want) {
			t.Errorf("the conversation lacks %q", want)
		}
	}
	for name, want := range map[string]struct {
		typ  string
		data []byte
	}{"photo": {"image/jpeg", photo}, "voice": {"audio/ogg", voice}, "page": {"application/octet-stream", []byte("<script>alert(1)</script>")}} {
		resp, body := viewer.do(t, "GET", "/media/"+itoa(ids[name]), nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want.typ || !bytes.Equal([]byte(body), want.data) ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: %d %s, %d bytes, headers %v", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), resp.Header)
		}
	}
	if resp, _ := viewer.do(t, "GET", "/media/"+itoa(ids["pending"]), nil, nil); resp.StatusCode != 404 {
		t.Errorf("an attachment not fetched yet: %d", resp.StatusCode)
	}
	var n int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'media.view'`).Scan(&n)
	if n != 4 {
		t.Errorf("%d openings audited, want 4", n)
	}
	if resp, _ := (&browser{site: site}).do(t, "GET", "/media/"+itoa(ids["photo"]), nil, nil); resp.StatusCode != 303 {
		t.Errorf("an attachment without signing in: %d", resp.StatusCode)
	}
}
