// Package storetest writes test data through the store's own write paths,
// so tests hold the rows production writes (an inbound message as the
// Ingestor writes a webhook's, never a hand-made row).
package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

var written atomic.Int64 // numbers the provider ids of Inbound

// Inbound stores body as a message from contact c, as a webhook's is
// stored (store.Ingestor; provider "test"), and returns it as read back.
func Inbound(t testing.TB, db *store.DB, crypto store.Crypto, c *models.Contact, body string) *models.Message {
	t.Helper()
	ctx := context.Background()
	it := store.IngestItem{From: phone.Address{Channel: c.Channel, Number: c.Address}.String(), Provider: "test",
		ProviderMessageID: fmt.Sprintf("test-%d", written.Add(1)), Body: body}
	var results []store.IngestResult
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		results, err = store.NewIngestor(db, crypto).Write(ctx, tx, []store.IngestItem{it})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.NewMessageStore(db, crypto).Get(ctx, results[0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
