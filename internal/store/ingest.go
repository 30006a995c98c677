package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/models"
)

// Ingestor writes batches of inbound messages with a fixed handful of
// statements however large the batch: the path every webhook waits on, and
// the one way an inbound message or a contact is written (replies are
// written by MessageStore.InsertReplies). It writes on a pgx transaction
// (so the queue's pgx driver can enqueue in the same one) all but the word
// index, which the processing job adds.
type Ingestor struct {
	crypto   Crypto
	contacts *idAllocator
	messages *idAllocator
	media    *idAllocator
}

// NewIngestor returns an ingestor writing to db, with the ids of db's
// other writers.
func NewIngestor(db *DB, c Crypto) *Ingestor {
	return &Ingestor{crypto: c, contacts: db.allocator("contacts"), messages: db.allocator("messages"), media: db.allocator("media")}
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

	// Set by Prepare: the address read and its contact's key.
	prepared bool
	addr     phone.Address
	key      contactKey
}

// IngestMedia is an attachment to fetch later.
type IngestMedia struct {
	Ref         string
	ContentType string
	// Wait holds the contact's later messages until it is understood (a
	// voice note while speech-to-text is on).
	Wait bool
	// NotUnderstood records at once why it will not be understood (a voice
	// note while speech-to-text is off), for staff.
	NotUnderstood string
}

// IngestResult says what became of one item.
type IngestResult struct {
	ContactID int64   // when inserted
	MessageID int64   // when inserted
	Inserted  bool    // false: stored before (a replay)
	MediaIDs  []int64 // attachments to fetch, when inserted
}

type contactKey struct {
	channel string
	bidx    string
}

type pendingContact struct {
	number string
	valid  bool
}

// Write stores the items in tx. Items whose message was stored before come
// back with Inserted false.
//
// Contacts and messages go in one pipelined round trip: every contact of
// the batch is inserted unless it exists (its id reserved in advance), and
// the messages are inserted joined to their contacts by blind index,
// returning each new message's contact so the address behind the truncated
// index can be confirmed after decryption. A message whose contact cannot
// be found fails the statement (contact_id is NOT NULL) rather than
// passing for a replay. Nothing here updates an existing contact row,
// which processing may hold locked: a profile name stays on its message,
// and processing names the contact.
func (s *Ingestor) Write(ctx context.Context, tx pgx.Tx, items []IngestItem) ([]IngestResult, error) {
	keys := make([]contactKey, len(items))
	wanted := map[contactKey]*pendingContact{}
	for i := range items {
		if err := s.Prepare(items[i : i+1]); err != nil {
			return nil, err
		}
		it := &items[i]
		keys[i] = it.key
		if wanted[it.key] == nil {
			wanted[it.key] = &pendingContact{number: it.addr.Number, valid: it.addr.Valid}
		}
	}
	batch := &pgx.Batch{}
	if err := s.queueContacts(ctx, tx, batch, wanted); err != nil {
		return nil, err
	}
	ids, err := s.queueMessages(ctx, tx, batch, items, keys)
	if err != nil {
		return nil, err
	}
	br := tx.SendBatch(ctx, batch)
	results, err := s.readBatch(br, items, keys, wanted, ids)
	if cerr := br.Close(); err == nil {
		err = dbError(cerr, "Message")
	}
	if err != nil {
		return nil, err
	}
	return results, s.insertMedia(ctx, tx, items, results)
}

// Prepare reads each item's address and computes its contact's blind
// index, the work of a write that needs no database: callers that write
// together (ingest's group commit) run it each on their own, so the
// shared transaction does not wait on it. Write prepares what was not.
func (s *Ingestor) Prepare(items []IngestItem) error {
	for i := range items {
		it := &items[i]
		if it.prepared {
			continue
		}
		addr := s.crypto.Phones.ParseAddress(it.From)
		if addr.Number == "" {
			return models.Errorf(models.EINVALID, "Contact address is empty.")
		}
		it.addr, it.key = addr, contactKey{string(addr.Channel), string(s.crypto.Index.Exact(crypt.DomainAddress, addr.Number))}
		it.prepared = true
	}
	return nil
}

// queueContacts queues the insert of every wanted contact that does not
// exist yet, in one order for every batch so concurrent batches never
// deadlock.
func (s *Ingestor) queueContacts(ctx context.Context, tx pgx.Tx, batch *pgx.Batch, wanted map[contactKey]*pendingContact) error {
	keys := make([]contactKey, 0, len(wanted))
	for k := range wanted {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].channel+keys[i].bidx < keys[j].channel+keys[j].bidx })
	n := len(keys)
	ids, channels, addrs, bidxs, invalid := make([]int64, n), make([]string, n), make([][]byte, n), make([][]byte, n), make([]bool, n)
	tails := make([]*int32, n) // NULL for an address that is not a number
	for i, k := range keys {
		id, err := s.nextID(ctx, tx, s.contacts)
		if err != nil {
			return err
		}
		c := wanted[k]
		ids[i], channels[i], bidxs[i], invalid[i] = id, k.channel, []byte(k.bidx), !c.valid
		addrs[i] = s.crypto.Ring.EncryptString(c.number, crypt.Ref{Table: "contacts", Column: "address_enc", ID: id})
		if tail, ok := s.crypto.Index.Tail(c.number); ok && c.valid {
			tails[i] = &tail
		}
	}
	batch.Queue(`INSERT INTO contacts (id, channel, address_enc, address_bidx, address_invalid, address_tail_bidx)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::boolean[], $6::integer[])
		ON CONFLICT (channel, address_bidx) DO NOTHING`, ids, channels, addrs, bidxs, invalid, tails)
	return nil
}

// queueMessages queues the messages' insert and returns their reserved
// ids. Ids follow the items' order, which is arrival order (a contact's
// messages without a platform timestamp are processed in id order); rows
// go in provider id order, so concurrent batches never deadlock.
func (s *Ingestor) queueMessages(ctx context.Context, tx pgx.Tx, batch *pgx.Batch, items []IngestItem, keys []contactKey) ([]int64, error) {
	reserved := make([]int64, len(items))
	for i := range items {
		id, err := s.nextID(ctx, tx, s.messages)
		if err != nil {
			return nil, err
		}
		reserved[i] = id
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		x, y := items[order[a]], items[order[b]]
		return x.Provider+"\x00"+x.ProviderMessageID < y.Provider+"\x00"+y.ProviderMessageID
	})
	n := len(items)
	if n >= writePlaces {
		return nil, models.Errorf(models.EINTERNAL, "A write of %d messages is more than one write can place.", n)
	}
	now := time.Now().UTC()
	place := placesOf(items, now)
	ids, channels, bidxs, providers, pmids := make([]int64, n), make([]string, n), make([][]byte, n), make([]string, n), make([]string, n)
	bodies, names, times, places := make([][]byte, n), make([][]byte, n), make([]pgtype.Timestamptz, n), make([]int64, n)
	for j, i := range order {
		it, id := items[i], reserved[i]
		ids[j], channels[j], bidxs[j], providers[j], pmids[j] = id, keys[i].channel, []byte(keys[i].bidx), it.Provider, it.ProviderMessageID
		places[j] = place[i]
		bodies[j] = s.crypto.Ring.EncryptString(it.Body, crypt.Ref{Table: "messages", Column: "body_enc", ID: id})
		if it.ProfileName != "" {
			names[j] = s.crypto.Ring.EncryptString(it.ProfileName, crypt.Ref{Table: "messages", Column: "profile_name_enc", ID: id})
		}
		if it.ProviderTime != nil {
			times[j] = pgtype.Timestamptz{Time: *it.ProviderTime, Valid: true}
		}
	}
	batch.Queue(ingestMessagesSQL,
		ids, channels, bidxs, providers, pmids, bodies, names, times, seq(n), string(models.StatusReceived), now, places)
	return reserved, nil
}

// ingestMessagesSQL inserts a write's messages (skipping any stored
// before) and returns each new one's id, contact and the contact's sealed
// address. Contacts are found by scalar subqueries on their unique keys,
// not joins: a cached generic plan made while the tables were nearly empty
// (a fresh database, before autovacuum's first analyse) joined them by
// hash over a sequential scan of every contact, so each write grew slower
// with each contact stored.
var ingestMessagesSQL = `WITH ` + writeNumber + `, ins AS (
		INSERT INTO messages (id, contact_id, direction, channel, provider, provider_message_id, body_enc, profile_name_enc, status, provider_time, created_at, seq)
		SELECT v.id, (SELECT c.id FROM contacts c WHERE c.channel = v.channel AND c.address_bidx = v.bidx),
		  'in', v.channel, v.provider, v.pmid, v.body, v.name, $10, v.t, $11, w.base + v.place
		FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::timestamptz[], $9::bigint[], $12::bigint[])
		  AS v(id, channel, bidx, provider, pmid, body, name, t, ord, place)
		CROSS JOIN w
		ORDER BY v.ord
		ON CONFLICT (provider, provider_message_id) DO NOTHING
		RETURNING id, contact_id)
		SELECT ins.id, ins.contact_id, (SELECT c.address_enc FROM contacts c WHERE c.id = ins.contact_id) FROM ins`

// placesOf is each item's position among the write's messages: by the
// platform's time where it gave one (the write's time where it did not),
// then arrival, the order their contact's messages are processed in.
func placesOf(items []IngestItem, now time.Time) []int64 {
	at := func(i int) time.Time {
		if t := items[i].ProviderTime; t != nil {
			return *t
		}
		return now
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return at(order[a]).Before(at(order[b])) })
	places := make([]int64, len(items))
	for p, i := range order {
		places[i] = int64(p)
	}
	return places
}

func seq(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

// readBatch reads the contacts insert and the messages insert, confirming
// each new message's contact by its decrypted address.
func (s *Ingestor) readBatch(br pgx.BatchResults, items []IngestItem, keys []contactKey, wanted map[contactKey]*pendingContact, reserved []int64) ([]IngestResult, error) {
	if _, err := br.Exec(); err != nil {
		return nil, dbError(err, "Contact")
	}
	rows, err := br.Query()
	if err != nil {
		return nil, dbError(err, "Message")
	}
	defer rows.Close()
	byID := make(map[int64]int, len(items))
	for i, id := range reserved {
		byID[id] = i
	}
	results := make([]IngestResult, len(items))
	confirmed := map[contactKey]bool{}
	for rows.Next() {
		var id, contactID int64
		var enc []byte
		if err := rows.Scan(&id, &contactID, &enc); err != nil {
			return nil, dbError(err, "Message")
		}
		i, ok := byID[id]
		if !ok {
			return nil, models.Errorf(models.EINTERNAL, "An inserted message is not one of the batch.")
		}
		k := keys[i]
		if !confirmed[k] {
			addr, err := s.crypto.Ring.DecryptString(enc, crypt.Ref{Table: "contacts", Column: "address_enc", ID: contactID})
			if err != nil {
				return nil, err
			}
			if addr != wanted[k].number {
				return nil, models.Errorf(models.ECONFLICT, "Contact address collides with another; retry.")
			}
			confirmed[k] = true
		}
		results[i] = IngestResult{ContactID: contactID, MessageID: id, Inserted: true}
	}
	return results, dbError(rows.Err(), "Message")
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
			understanding := ""
			switch {
			case m.Wait:
				understanding = UnderstandWaiting
			case m.NotUnderstood != "":
				understanding = UnderstandFailed
			}
			if _, err := tx.Exec(ctx, `INSERT INTO media (id, message_id, position, ref_enc, content_type, understanding, understand_error)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, results[i].MessageID, pos, ref, m.ContentType, understanding, m.NotUnderstood); err != nil {
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
