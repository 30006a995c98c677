package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// Every string a contact or a staff member supplies is escaped wherever
// the console shows it: names, message bodies, conversation variables,
// searches in the audit log.
func TestConsole_RendersUserSuppliedStringsInert(t *testing.T) {
	site := newConsoleSite(t, nil)
	ctx := context.Background()
	const (
		name     = `<script>alert("name")</script>`
		body     = `<img src=x onerror=alert(1)> hello`
		variable = `"><svg onload=alert(2)>`
		search   = `<iframe src=javascript:alert(3)>`
	)
	contacts, messages := store.NewContactStore(site.db, site.crypto), store.NewMessageStore(site.db, site.crypto)
	c, _, err := contacts.FindOrCreate(ctx, "whatsapp:+919812345678")
	if err != nil {
		t.Fatal(err)
	}
	if err := contacts.SetName(ctx, nil, c.ID, name); err != nil {
		t.Fatal(err)
	}
	in := storetest.Inbound(t, site.db, site.crypto, c, body)
	if err := messages.IndexWords(ctx, nil, in); err != nil {
		t.Fatal(err)
	}
	out := &models.Message{ContactID: c.ID, Channel: models.ChannelWhatsApp, Provider: "test", Body: body, Status: models.StatusFailed}
	if err := messages.InsertReplies(ctx, nil, []*models.Message{out}); err != nil {
		t.Fatal(err)
	}
	if _, err := site.db.Pool.Exec(ctx, `UPDATE messages SET error_reason = '<b onmouseover=alert(4)>bad</b>' WHERE direction = 'out'`); err != nil {
		t.Fatal(err)
	}
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	if err := convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source); err != nil {
		t.Fatal(err)
	}
	conv := &models.Conversation{ContactID: c.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "ask_age", Status: models.ConversationActive,
		Variables: map[string]string{"name": variable, `<u>key</u>`: "v"}}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	admin := site.as(t, models.RoleAdmin)
	admin.do(t, "GET", "/?q="+url.QueryEscape(search), nil, nil) // the search lands in the audit log
	pages := []string{"/", "/?q=hello", "/inbox/results?q=hello", "/contacts/" + itoa(c.ID), "/contacts/" + itoa(c.ID) + "/timeline",
		"/?q=" + url.QueryEscape(search) + "&flow=" + url.QueryEscape(search), "/admin/audit", "/handoffs"}
	for _, path := range pages {
		resp, page := admin.do(t, "GET", path, nil, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		for _, live := range []string{"<script>alert", "<img src=x", "<svg onload", "<iframe", "<b onmouseover", "<u>key"} {
			if strings.Contains(page, live) {
				t.Errorf("%s renders %q live", path, live)
			}
		}
	}
	_, page := admin.do(t, "GET", "/contacts/"+itoa(c.ID), nil, nil)
	for _, inert := range []string{"&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt; hello",
		"&#34;&gt;&lt;svg onload=alert(2)&gt;", "&lt;b onmouseover=alert(4)&gt;bad&lt;/b&gt;"} {
		if !strings.Contains(page, inert) {
			t.Errorf("the contact page does not show %q as text", inert)
		}
	}
	_, page = admin.do(t, "GET", "/admin/audit?action=messages.search", nil, nil)
	if !strings.Contains(page, "&lt;iframe src=javascript:alert(3)&gt;") {
		t.Error("the audit page does not show the search's filter as text (the query itself is kept as a fingerprint)")
	}
}
