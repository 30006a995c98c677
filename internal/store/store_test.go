package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func randomKey(t testing.TB, id string) crypt.Key {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return crypt.Key{ID: id, Secret: b}
}

func newCrypto(t testing.TB, keys ...crypt.Key) store.Crypto {
	t.Helper()
	if len(keys) == 0 {
		keys = []crypt.Key{randomKey(t, "k1")}
	}
	ring, err := crypt.NewKeyRing(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := crypt.NewIndexer(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return store.Crypto{Ring: ring, Index: ix, Phones: phone.New("IN")}
}

// fixture is a fresh database with the stores over it.
type fixture struct {
	db       *store.DB
	crypto   store.Crypto
	contacts *store.ContactStore
	messages *store.MessageStore
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db := pgtest.Open(t)
	c := newCrypto(t)
	return &fixture{db: db, crypto: c, contacts: store.NewContactStore(db, c), messages: store.NewMessageStore(db, c)}
}

func (f *fixture) contact(t testing.TB, address, name string) *models.Contact {
	t.Helper()
	ctx := context.Background()
	c, _, err := f.contacts.FindOrCreate(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		if err := f.contacts.SetName(ctx, nil, c.ID, name); err != nil {
			t.Fatal(err)
		}
		c.Name = name
	}
	return c
}

// message stores body from c, as a webhook's is stored, and indexes its
// words, as processing does.
func (f *fixture) message(t testing.TB, c *models.Contact, body string) *models.Message {
	t.Helper()
	m := storetest.Inbound(t, f.db, f.crypto, c, body)
	if err := f.messages.IndexWords(context.Background(), nil, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpen_PoolSize(t *testing.T) {
	for _, tt := range []struct{ asked, want int32 }{{0, 10}, {45, 45}} {
		db, err := store.Open(context.Background(), pgtest.DSN(t), store.Options{MaxConns: int(tt.asked)})
		if err != nil {
			t.Fatal(err)
		}
		if got := db.Pool.Config().MaxConns; got != tt.want {
			t.Errorf("MaxConns %d: pool of %d, want %d", tt.asked, got, tt.want)
		}
		db.Close()
	}
}
