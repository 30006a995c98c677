package main

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// fillTails gives contacts written before the last-digits index existed
// their index (a migration cannot: it has no key), in the background, so a
// large table does not hold up the start. It stops with ctx; a pass
// stopped anywhere, or run by several instances at once, resumes where the
// rows still without one are. Until it is done, such contacts are found by
// their whole number only.
func fillTails(ctx context.Context, contacts *store.ContactStore, log *slog.Logger) {
	n, err := contacts.FillTails(ctx, log)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error("filling contacts' last-digits index stopped; the next start resumes it", slog.Int("filled", n), slog.String("code", models.ErrorCode(err)))
	case n > 0:
		log.Info("filled contacts' last-digits index", slog.Int("filled", n))
	}
}
