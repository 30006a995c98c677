package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// Ingestor writes batches of inbound messages with a fixed handful of
// statements however large the batch: the path every webhook waits on. It
// writes what ContactStore.FindOrCreate and MessageStore.Insert write, in
// bulk, on a pgx transaction (so the queue's pgx driver can enqueue in the
// same one), all but the word index, which the processing job adds.
type Ingestor struct {
	crypto   Crypto
	contacts *idAllocator
	messages *idAllocator
	media    *idAllocator
}

// NewIngestor returns an ingestor.
func NewIngestor(c Crypto) *Ingestor {
	return &Ingestor{crypto: c, contacts: newIDAllocator("contacts"), messages: newIDAllocator("messages"), media: newIDAllocator("media")}
}

// IngestItem is one inbound message to store.
type IngestItem struct {
	From              string // channel address as the platform gave it
	ProfileName       string
	Provider          string
	ProviderMessageID string
	Body              string
	ProviderTime      *time.Time
	Media             []IngestMedia
}

// IngestMedia is an attachment to fetch later.
type IngestMedia struct {
	Ref         string
	ContentType string
}

// IngestResult says what became of one item.
type IngestResult struct {
	ContactID int64
	MessageID int64
	Inserted  bool    // false: stored before (a replay)
	MediaIDs  []int64 // attachments to fetch, when inserted
}

type contactKey struct {
	channel string
	bidx    string
}

// Write stores the items in tx. Items whose message was stored before come
// back with Inserted false.
func (s *Ingestor) Write(ctx context.Context, tx pgx.Tx, items []IngestItem) ([]IngestResult, error) {
	results := make([]IngestResult, len(items))
	keys := make([]contactKey, len(items))
	wanted := map[contactKey]*pendingContact{}
	for i, it := range items {
		addr := s.crypto.Phones.ParseAddress(it.From)
		if addr.Number == "" {
			return nil, models.Errorf(models.EINVALID, "Contact address is empty.")
		}
		k := contactKey{string(addr.Channel), string(s.crypto.Index.Exact(crypt.DomainAddress, addr.Number))}
		keys[i] = k
		if wanted[k] == nil {
			wanted[k] = &pendingContact{number: addr.Number, valid: addr.Valid}
		}
		if it.ProfileName != "" && wanted[k].profileName == "" {
			wanted[k].profileName = it.ProfileName
		}
	}
	if err := s.resolveContacts(ctx, tx, wanted); err != nil {
		return nil, err
	}
	if err := s.nameContacts(ctx, tx, wanted); err != nil {
		return nil, err
	}
	for i := range items {
		results[i].ContactID = wanted[keys[i]].id
	}
	if err := s.insertMessages(ctx, tx, items, keys, wanted, results); err != nil {
		return nil, err
	}
	return results, s.insertMedia(ctx, tx, items, results)
}

type pendingContact struct {
	number      string
	valid       bool
	profileName string
	id          int64
	named       bool
}

// resolveContacts finds or creates every wanted contact.
func (s *Ingestor) resolveContacts(ctx context.Context, tx pgx.Tx, wanted map[contactKey]*pendingContact) error {
	if err := s.findContacts(ctx, tx, wanted); err != nil {
		return err
	}
	var missing []contactKey
	for k, c := range wanted {
		if c.id == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// One order for every batch, so concurrent batches never deadlock.
	sort.Slice(missing, func(i, j int) bool {
		return missing[i].channel+missing[i].bidx < missing[j].channel+missing[j].bidx
	})
	ids, channels, addrs, bidxs, invalid := make([]int64, len(missing)), make([]string, len(missing)), make([][]byte, len(missing)), make([][]byte, len(missing)), make([]bool, len(missing))
	for i, k := range missing {
		id, err := s.nextID(ctx, tx, s.contacts)
		if err != nil {
			return err
		}
		c := wanted[k]
		ids[i], channels[i], bidxs[i], invalid[i] = id, k.channel, []byte(k.bidx), !c.valid
		addrs[i] = s.crypto.Ring.EncryptString(c.number, crypt.Ref{Table: "contacts", Column: "address_enc", ID: id})
	}
	rows, err := tx.Query(ctx, `INSERT INTO contacts (id, channel, address_enc, address_bidx, address_invalid)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::boolean[])
		ON CONFLICT (channel, address_bidx) DO NOTHING RETURNING id`, ids, channels, addrs, bidxs, invalid)
	if err != nil {
		return dbError(err, "Contact")
	}
	created, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return dbError(err, "Contact")
	}
	made := map[int64]bool{}
	for _, id := range created {
		made[id] = true
	}
	for i, k := range missing {
		if made[ids[i]] {
			wanted[k].id = ids[i]
		}
	}
	// Those created by a concurrent batch a moment ago.
	if len(created) < len(missing) {
		if err := s.findContacts(ctx, tx, wanted); err != nil {
			return err
		}
		for _, k := range missing {
			if wanted[k].id == 0 {
				return models.Errorf(models.ECONFLICT, "Contact address collides with another; retry.")
			}
		}
	}
	return nil
}

// findContacts sets the id of each wanted contact that exists, confirming
// the truncated index on the decrypted address.
func (s *Ingestor) findContacts(ctx context.Context, tx pgx.Tx, wanted map[contactKey]*pendingContact) error {
	var channels []string
	var bidxs [][]byte
	for k, c := range wanted {
		if c.id == 0 {
			channels, bidxs = append(channels, k.channel), append(bidxs, []byte(k.bidx))
		}
	}
	rows, err := tx.Query(ctx, `SELECT c.id, c.channel, c.address_bidx, c.address_enc, c.name_enc IS NOT NULL FROM contacts c
		JOIN unnest($1::text[], $2::bytea[]) AS k(channel, bidx) ON c.channel = k.channel AND c.address_bidx = k.bidx`, channels, bidxs)
	if err != nil {
		return dbError(err, "Contact")
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ch string
		var bidx, enc []byte
		var named bool
		if err := rows.Scan(&id, &ch, &bidx, &enc, &named); err != nil {
			return dbError(err, "Contact")
		}
		c := wanted[contactKey{ch, string(bidx)}]
		if c == nil || c.id != 0 {
			continue
		}
		addr, err := s.crypto.Ring.DecryptString(enc, crypt.Ref{Table: "contacts", Column: "address_enc", ID: id})
		if err != nil {
			return err
		}
		if addr == c.number {
			c.id, c.named = id, named
		}
	}
	return dbError(rows.Err(), "Contact")
}

// nameContacts records the profile name of contacts that have none yet.
func (s *Ingestor) nameContacts(ctx context.Context, tx pgx.Tx, wanted map[contactKey]*pendingContact) error {
	for _, c := range wanted {
		if c.named || c.profileName == "" {
			continue
		}
		enc := s.crypto.Ring.EncryptString(c.profileName, crypt.Ref{Table: "contacts", Column: "name_enc", ID: c.id})
		if _, err := tx.Exec(ctx, `UPDATE contacts SET name_enc = $2, updated_at = now() WHERE id = $1 AND name_enc IS NULL`, c.id, enc); err != nil {
			return dbError(err, "Contact")
		}
		tokens := s.crypto.Index.Tokens(crypt.DomainName, c.profileName)
		if _, err := tx.Exec(ctx, `INSERT INTO contact_words (bidx, contact_id) SELECT unnest($1::integer[]), $2 ON CONFLICT DO NOTHING`, tokens, c.id); err != nil {
			return dbError(err, "Contact")
		}
	}
	return nil
}

func (s *Ingestor) insertMessages(ctx context.Context, tx pgx.Tx, items []IngestItem, keys []contactKey, wanted map[contactKey]*pendingContact, results []IngestResult) error {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		x, y := items[order[a]], items[order[b]]
		return x.Provider+"\x00"+x.ProviderMessageID < y.Provider+"\x00"+y.ProviderMessageID
	})
	n := len(items)
	ids, contactIDs, channels, providers, pmids := make([]int64, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	bodies, times := make([][]byte, n), make([]pgtype.Timestamptz, n)
	now := time.Now().UTC()
	for j, i := range order {
		id, err := s.nextID(ctx, tx, s.messages)
		if err != nil {
			return err
		}
		it := items[i]
		results[i].MessageID = id
		ids[j], contactIDs[j], channels[j], providers[j], pmids[j] = id, wanted[keys[i]].id, keys[i].channel, it.Provider, it.ProviderMessageID
		bodies[j] = s.crypto.Ring.EncryptString(it.Body, crypt.Ref{Table: "messages", Column: "body_enc", ID: id})
		if it.ProviderTime != nil {
			times[j] = pgtype.Timestamptz{Time: *it.ProviderTime, Valid: true}
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, provider_message_id, body_enc, status, provider_time, created_at)
		SELECT id, contact_id, 'in', channel, provider, pmid, body, $8, t, $9
		FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[])
		  AS v(id, contact_id, channel, provider, pmid, body, t)
		ON CONFLICT (provider, provider_message_id) DO NOTHING RETURNING id`,
		ids, contactIDs, channels, providers, pmids, bodies, times, string(models.StatusReceived), now)
	if err != nil {
		return dbError(err, "Message")
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return dbError(err, "Message")
	}
	made := make(map[int64]bool, len(inserted))
	for _, id := range inserted {
		made[id] = true
	}
	for i := range results {
		results[i].Inserted = made[results[i].MessageID]
		if !results[i].Inserted {
			results[i].MessageID = 0
		}
	}
	return nil
}

func (s *Ingestor) insertMedia(ctx context.Context, tx pgx.Tx, items []IngestItem, results []IngestResult) error {
	for i, it := range items {
		if !results[i].Inserted {
			continue
		}
		for pos, m := range it.Media {
			id, err := s.nextID(ctx, tx, s.media)
			if err != nil {
				return err
			}
			ref := s.crypto.Ring.EncryptString(m.Ref, crypt.Ref{Table: "media", Column: "ref_enc", ID: id})
			if _, err := tx.Exec(ctx, `INSERT INTO media (id, message_id, position, ref_enc, content_type) VALUES ($1, $2, $3, $4, $5)`,
				id, results[i].MessageID, pos, ref, m.ContentType); err != nil {
				return dbError(err, "Media")
			}
			results[i].MediaIDs = append(results[i].MediaIDs, id)
		}
	}
	return nil
}

// nextID reserves ids through tx's connection.
func (s *Ingestor) nextID(ctx context.Context, tx pgx.Tx, a *idAllocator) (int64, error) {
	return a.next(func() (int64, error) {
		var start int64
		err := tx.QueryRow(ctx, "SELECT nextval(pg_get_serial_sequence($1, 'id'))", a.table).Scan(&start)
		if err != nil {
			return 0, fmt.Errorf("reserve %s ids: %w", a.table, err)
		}
		return start, nil
	})
}
