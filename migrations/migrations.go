// Package migrations embeds Parley's versioned SQL schema, applied by goose.
// Files are named NNNNN_what.sql and are never edited once released: a
// change is a new file.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
