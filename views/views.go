// Package views holds the console's templ components. Props are plain
// structs built by handlers, never database rows.
package views

import (
	"net/http"
	"strconv"
)

//go:generate go tool templ generate

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func statusText(code int) string {
	return strconv.Itoa(code) + " · " + http.StatusText(code)
}
