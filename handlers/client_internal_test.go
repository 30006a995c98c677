package handlers

import (
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// The client's address is read hops entries from the right of
// X-Forwarded-For (all its headers together), never further left, where
// the client writes what it likes; a port with the address (as some
// proxies write it) is dropped; without enough entries, or with
// something that is not an address there, the connection's stays.
func TestRealClient_TakesTheEntryTheTrustedProxiesWrote(t *testing.T) {
	for _, tc := range []struct {
		name string
		hops int
		xff  []string
		want string
	}{
		{"no proxy trusted", 0, []string{"203.0.113.5"}, "0.0.0.0"},
		{"Cloud Run", 1, []string{"203.0.113.5"}, "203.0.113.5"},
		{"Cloud Run, spoofed", 1, []string{"10.9.9.9, 203.0.113.5"}, "203.0.113.5"},
		{"load balancer in front", 2, []string{"10.9.9.9, 203.0.113.5, 130.211.0.1"}, "203.0.113.5"},
		{"headers taken together", 2, []string{"10.9.9.9, 203.0.113.5", "130.211.0.1"}, "203.0.113.5"},
		{"IPv6", 1, []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4 with a port", 1, []string{"10.9.9.9, 203.0.113.5:5678"}, "203.0.113.5"},
		{"IPv6 with a port", 1, []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6 in brackets", 1, []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"a port alone", 1, []string{":443"}, "0.0.0.0"},
		{"too few entries", 2, []string{"203.0.113.5"}, "0.0.0.0"},
		{"not an address", 1, []string{"203.0.113.5, unknown"}, "0.0.0.0"},
		{"no header", 1, nil, "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := fiber.New()
			app.Use(realClient(tc.hops))
			app.Get("/", func(c *fiber.Ctx) error { return c.SendString(c.IP()) })
			req := httptest.NewRequest("GET", "/", nil)
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, _ := resp.Body.Read(buf)
			if got := string(buf[:n]); got != tc.want {
				t.Fatalf("client %q, want %q", got, tc.want)
			}
		})
	}
}
