package handlers

import (
	"net"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// realClient makes c.IP() the client's address when the server sits behind
// hops trusted proxies (PARLEY_TRUSTED_PROXY_HOPS), for the sign-in
// throttle, the audit log and everything else that asks.
//
// Each proxy appends the address it was connected from to
// X-Forwarded-For, so the client is the hops-th entry from the right:
// what lies left of it was written by the client and proves nothing.
// Fiber's own ProxyHeader takes the leftmost entry, which is why it is not
// used. With too few entries (a request that did not come through the
// proxies) the connection's address stays. hops 0 trusts no header.
func realClient(hops int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if hops > 0 {
			if ip := forwardedClient(c, hops); ip != nil {
				c.Context().SetRemoteAddr(&net.TCPAddr{IP: ip})
			}
		}
		return c.Next()
	}
}

// forwardedClient is the hops-th address from the right of every
// X-Forwarded-For header taken together, or nil when there is none there.
func forwardedClient(c *fiber.Ctx, hops int) net.IP {
	var entries []string
	c.Request().Header.VisitAll(func(k, v []byte) {
		if strings.EqualFold(string(k), fiber.HeaderXForwardedFor) {
			entries = append(entries, strings.Split(string(v), ",")...)
		}
	})
	if len(entries) < hops {
		return nil
	}
	return entryAddress(entries[len(entries)-hops])
}

// entryAddress is the address of one X-Forwarded-For entry, which some
// proxies write with the client's port (1.2.3.4:5678, [2001:db8::1]:443):
// nil when it holds none.
func entryAddress(entry string) net.IP {
	entry = strings.TrimSpace(entry)
	if ip := net.ParseIP(entry); ip != nil {
		return ip
	}
	if host, _, err := net.SplitHostPort(entry); err == nil {
		return net.ParseIP(host)
	}
	return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"))
}
