package handlers

import "testing"

// safeNext keeps a path on this site and turns every usual open-redirect
// bypass into /.
func TestSafeNext_OnlyPathsOnThisSite(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"/", "/"},
		{"/contacts/42", "/contacts/42"},
		{"/admin/audit?after=10&q=a+b#top", "/admin/audit?after=10&q=a+b#top"},
		{"/search?q=%2F%2Fx", "/search?q=%2F%2Fx"},
		{"", "/"},
		{"/\t/evil.example/x", "/"},
		{"/%09/evil.example/x", "/"},
		{"/\n/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%0d%0aSet-Cookie:x=1", "/"},
		{"/\r\nLocation: //evil.example", "/"},
		{"//evil.example/", "/"},
		{"///evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%5cevil.example", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"/%2f/evil.example", "/"},
		{"//@evil.example", "/"},
		{"/@evil.example", "/@evil.example"}, // a path on this site
		{"https://evil.example/", "/"},
		{"http:evil.example", "/"},
		{"http:/evil.example", "/"},
		{"HTTPS://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"JaVaScRiPt:alert(1)", "/"},
		{"data:text/html,<script>alert(1)</script>", "/"},
		{"evil.example", "/"},
		{"%2F%2Fevil.example", "/"},
		{" //evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/%00/evil.example", "/"},
		{"/\x7f/evil.example", "/"},
	} {
		if got := safeNext(tc.next); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}
