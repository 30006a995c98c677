// Package static embeds the console's built assets: Tailwind's CSS (built
// by `make css` from static/src), htmx and its SSE extension (copied from
// npm by `make css`) and the console's own small scripts (app.js; focus.js, the keyboard's place;
// notice.js, the hand-off count).
package static

import (
	"embed"
	"net/http"
)

// FS holds the built assets served under /static.
//
//go:embed app.css app.js focus.js notice.js htmx.min.js htmx-ext-sse.min.js
var FS embed.FS

// HTTPFS returns the assets as an http.FileSystem.
func HTTPFS() http.FileSystem { return http.FS(FS) }
