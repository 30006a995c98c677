package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

// LockContact takes the contact's row lock for the rest of tx, so that one
// contact's messages are processed by one job at a time. The lock is FOR
// NO KEY UPDATE: it does not block the foreign-key checks of messages
// being stored for the contact meanwhile, so webhooks are never held up by
// the processing of their contact.
func (s *ContactStore) LockContact(ctx context.Context, tx *gorm.DB, id int64) (*models.Contact, error) {
	var row contactRow
	err := gormFor(ctx, s.db, s.crypto, tx).Raw("SELECT * FROM contacts WHERE id = ? FOR NO KEY UPDATE", id).Scan(&row).Error
	if err != nil {
		return nil, dbError(err, "Contact")
	}
	if row.ID == 0 {
		return nil, models.Errorf(models.ENOTFOUND, "Contact not found.")
	}
	return row.model(), nil
}

// LockContacts takes the row locks of the contacts (as LockContact), in
// id order, and returns them in that order. A lock another transaction
// holds is waited for at most wait (lock_timeout, for the rest of tx):
// longer, and the statement fails, and tx with it. A contact erased
// meanwhile is not returned.
func (s *ContactStore) LockContacts(ctx context.Context, tx *gorm.DB, ids []int64, wait time.Duration) ([]*models.Contact, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	if err := g.Exec(fmt.Sprintf("SET LOCAL lock_timeout = %d", max(wait.Milliseconds(), 1))).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	var rows []contactRow
	err := g.Raw("SELECT * FROM contacts WHERE id = ANY(?::bigint[]) ORDER BY id FOR NO KEY UPDATE", bigintArray(ids)).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Contact")
	}
	out := make([]*models.Contact, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// SetOptedOut records that the contact asked for no more messages (or asked
// for them again).
func (s *ContactStore) SetOptedOut(ctx context.Context, tx *gorm.DB, id int64, optedOut bool) error {
	var at any
	if optedOut {
		at = time.Now().UTC()
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Exec("UPDATE contacts SET opted_out_at = ?, updated_at = now() WHERE id = ?", at, id).Error
	return dbError(err, "Contact")
}

// unprocessedOrder is the order a contact's messages are processed in: the
// platform's timestamp where it gave one, else arrival.
const unprocessedOrder = "coalesce(provider_time, created_at), id"

// Unprocessed returns the contact's inbound messages not yet processed, in
// the order they were written.
func (s *MessageStore) Unprocessed(ctx context.Context, tx *gorm.DB, contactID int64) ([]*models.Message, error) {
	of, err := s.UnprocessedOf(ctx, tx, []int64{contactID})
	return of[contactID], err
}

// UnprocessedOf returns several contacts' inbound messages not yet
// processed, with one statement: each one's in the order they were written.
func (s *MessageStore) UnprocessedOf(ctx context.Context, tx *gorm.DB, contactIDs []int64) (map[int64][]*models.Message, error) {
	out := map[int64][]*models.Message{}
	if len(contactIDs) == 0 {
		return out, nil
	}
	var rows []messageRow
	err := gormFor(ctx, s.db, s.crypto, tx).Select(withMedia).
		Where("contact_id IN ? AND direction = 'in' AND processed_at IS NULL", contactIDs).
		Order("contact_id, " + unprocessedOrder).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "Message")
	}
	for i := range rows {
		m := rows[i].model()
		out[m.ContactID] = append(out[m.ContactID], m)
	}
	return out, nil
}

// HasUnprocessed reports whether the contact has an inbound message not
// yet processed (committed ones; a read outside any transaction, without
// a lock).
func (s *MessageStore) HasUnprocessed(ctx context.Context, contactID int64) (bool, error) {
	var found bool
	err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE contact_id = $1 AND direction = 'in' AND processed_at IS NULL)`,
		contactID).Scan(&found)
	return found, dbError(err, "Message")
}

// UnprocessedIDs returns the ids of the contact's unprocessed inbound
// messages in the same order, without opening any: one that no longer
// decrypts can then be dealt with alone (GetIn).
func (s *MessageStore) UnprocessedIDs(ctx context.Context, tx *gorm.DB, contactID int64) ([]int64, error) {
	var ids []int64
	err := gormFor(ctx, s.db, s.crypto, tx).Model(&messageRow{}).
		Where("contact_id = ? AND direction = 'in' AND processed_at IS NULL", contactID).
		Order(unprocessedOrder).Pluck("id", &ids).Error
	return ids, dbError(err, "Message")
}

// GetIn returns one message, read inside tx.
func (s *MessageStore) GetIn(ctx context.Context, tx *gorm.DB, id int64) (*models.Message, error) {
	var row messageRow
	if err := gormFor(ctx, s.db, s.crypto, tx).Select(withMedia).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Message")
	}
	return row.model(), nil
}

// MarkProcessed records that these inbound messages were processed.
func (s *MessageStore) MarkProcessed(ctx context.Context, tx *gorm.DB, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Exec("UPDATE messages SET processed_at = now(), status = ? WHERE id IN ?", models.StatusProcessed, ids).Error
	return dbError(err, "Message")
}

// LastInbound returns when the contact last wrote on the channel, or zero:
// when its latest inbound message arrived.
func (s *MessageStore) LastInbound(ctx context.Context, tx *gorm.DB, contactID int64, ch models.Channel) (time.Time, error) {
	var at *time.Time
	err := gormFor(ctx, s.db, s.crypto, tx).Raw(`SELECT created_at FROM messages WHERE contact_id = ? AND channel = ? AND direction = 'in'
		ORDER BY seq DESC LIMIT 1`, contactID, string(ch)).Scan(&at).Error
	if err != nil || at == nil {
		return time.Time{}, dbError(err, "Message")
	}
	return *at, nil
}

// statusRank is MessageStatus.Rank in SQL, so a status update that would
// move a message backwards matches no row.
const statusRank = `array_position(ARRAY['queued','sending','sent','delivered','read','failed'], %s)`

// UpdateStatus applies a platform's status callback to the message it sent
// with this id. A status never moves backwards: a late "sent" after
// "delivered" changes nothing. It reports whether the message changed.
func (s *MessageStore) UpdateStatus(ctx context.Context, provider, providerMessageID string, status models.MessageStatus, errorCode, reason string) (bool, error) {
	res := gormFor(ctx, s.db, s.crypto, nil).Exec(`UPDATE messages
		SET status = ?, error_code = CASE WHEN ? = 'failed' THEN ? ELSE error_code END,
		    error_reason = CASE WHEN ? = 'failed' AND ? <> '' THEN ? ELSE error_reason END
		WHERE provider = ? AND provider_message_id = ? AND direction = 'out'
		  AND coalesce(`+fmt.Sprintf(statusRank, "status")+`, 0) < `+fmt.Sprintf(statusRank, "?::text"),
		string(status), string(status), errorCode, string(status), reason, reason, provider, providerMessageID, string(status))
	if res.Error != nil {
		return false, dbError(res.Error, "Message")
	}
	return res.RowsAffected > 0, nil
}

// SendState is what the send job needs to know about an outbound message.
type SendState struct {
	Message  *models.Message
	Contact  *models.Contact
	Attempts int
	// Waiting: an earlier message to the contact must leave first;
	// Retrying: one of those waits for a retry (see LockOutbound).
	Waiting, Retrying bool
}

// LockOutbound locks an outbound message for the send job and returns it
// with its contact, and whether the contact has an older outbound message
// still queued or being sent (replies leave one contact in the order they
// were written, across inputs and staff actions) and whether one of those
// waits for a retry after a failed attempt. A send left "sending" for
// longer than stuck was interrupted and is being settled by its own retry,
// and messages queued for over two hours are stuck: neither holds the
// queue. A contact the caller read already (known) is not read again.
func (s *MessageStore) LockOutbound(ctx context.Context, tx *gorm.DB, id int64, stuck time.Duration, known *models.Contact) (*SendState, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	var m messageRow
	err := g.Raw(`SELECT m.*, earlier.* FROM messages m, `+earlierUnsent+` WHERE m.id = @id AND m.direction = 'out' FOR NO KEY UPDATE OF m`,
		sql.Named("id", id), sql.Named("stuck", stuck.Seconds())).Scan(&m).Error
	if err != nil {
		return nil, dbError(err, "Message")
	}
	if m.ID == 0 {
		return nil, models.Errorf(models.ENOTFOUND, "Message not found.")
	}
	st := &SendState{Message: m.model(), Contact: known, Attempts: m.Attempts, Waiting: m.EarlierWaiting, Retrying: m.EarlierRetrying}
	if known == nil || known.ID != m.ContactID {
		var c contactRow
		if err := g.First(&c, m.ContactID).Error; err != nil {
			return nil, dbError(err, "Contact")
		}
		st.Contact = c.model()
	}
	return st, nil
}

// LockOutbounds is LockOutbound for several messages at once, with two
// statements: it locks them in id order and returns those there are (an
// erased one is not), with their contacts, by id.
func (s *MessageStore) LockOutbounds(ctx context.Context, tx *gorm.DB, ids []int64, stuck time.Duration) (map[int64]*SendState, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	var rows []messageRow
	err := g.Raw(`SELECT m.*, earlier.* FROM messages m, `+earlierUnsent+` WHERE m.id = ANY(CAST(@ids AS bigint[])) AND m.direction = 'out'
		ORDER BY m.id FOR NO KEY UPDATE OF m`, sql.Named("ids", bigintArray(ids)), sql.Named("stuck", stuck.Seconds())).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Message")
	}
	out := make(map[int64]*SendState, len(rows))
	contacts := map[int64]*models.Contact{}
	var contactIDs []int64
	for i := range rows {
		m := &rows[i]
		out[m.ID] = &SendState{Message: m.model(), Attempts: m.Attempts, Waiting: m.EarlierWaiting, Retrying: m.EarlierRetrying}
		if _, ok := contacts[m.ContactID]; !ok {
			contacts[m.ContactID] = nil
			contactIDs = append(contactIDs, m.ContactID)
		}
	}
	if len(contactIDs) > 0 {
		var cs []contactRow
		if err := g.Raw(`SELECT * FROM contacts WHERE id = ANY(?::bigint[])`, bigintArray(contactIDs)).Scan(&cs).Error; err != nil {
			return nil, dbError(err, "Contact")
		}
		for i := range cs {
			contacts[cs[i].ID] = cs[i].model()
		}
	}
	for _, st := range out {
		st.Contact = contacts[st.Message.ContactID]
	}
	return out, nil
}

// earlierUnsent is, for the outbound message m of the outer query, whether
// the contact has an earlier outbound message (placed before it: seq,
// whichever instance wrote either) still queued or being sent, and whether
// one of those waits for a retry; @stuck is LockOutbound's stuck in
// seconds.
const earlierUnsent = `LATERAL (SELECT count(*) > 0 AS earlier_waiting, coalesce(bool_or(e.status = 'queued' AND e.attempts > 0), false) AS earlier_retrying
		FROM messages e
		WHERE e.contact_id = m.contact_id AND e.direction = 'out'
		  AND (e.status = 'queued' OR (e.status = 'sending' AND e.attempted_at > now() - make_interval(secs => @stuck)))
		  AND e.seq < m.seq AND e.created_at > m.created_at - interval '2 hours') earlier`

// AttemptedAt returns when the message's latest send attempt began (zero
// when none did).
func (s *MessageStore) AttemptedAt(ctx context.Context, id int64) (time.Time, error) {
	var at *time.Time
	err := s.db.Pool.QueryRow(ctx, `SELECT attempted_at FROM messages WHERE id = $1`, id).Scan(&at)
	if err != nil || at == nil {
		return time.Time{}, dbError(err, "Message")
	}
	return *at, nil
}

// ProviderIDKnown reports whether a message with the platform's id is
// stored already.
func (s *MessageStore) ProviderIDKnown(ctx context.Context, provider, providerMessageID string) (bool, error) {
	var known bool
	err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE provider = $1 AND provider_message_id = $2)`,
		provider, providerMessageID).Scan(&known)
	return known, dbError(err, "Message")
}

// BeginAttempt records, before the platform is called, that a send is
// under way.
func (s *MessageStore) BeginAttempt(ctx context.Context, tx *gorm.DB, id int64) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages SET status = ?, attempts = attempts + 1, attempted_at = now() WHERE id = ?`,
		models.StatusSending, id).Error
	return dbError(err, "Message")
}

// BeginAttempts is BeginAttempt for several messages, with one statement.
func (s *MessageStore) BeginAttempts(ctx context.Context, tx *gorm.DB, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages SET status = ?, attempts = attempts + 1, attempted_at = now() WHERE id = ANY(?::bigint[])`,
		models.StatusSending, bigintArray(ids)).Error
	return dbError(err, "Message")
}

// UndoAttempts takes back attempts begun for messages that were then not
// sent at all (the platform was never called): queued again, as before.
func (s *MessageStore) UndoAttempts(ctx context.Context, tx *gorm.DB, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages SET status = ?, attempts = greatest(attempts - 1, 0)
		WHERE id = ANY(?::bigint[]) AND status = ?`, models.StatusQueued, bigintArray(ids), models.StatusSending).Error
	return dbError(err, "Message")
}

// FinishSent records several messages the platform took, each with the
// id it gave (providerIDs[i] is ids[i]'s), with one statement.
func (s *MessageStore) FinishSent(ctx context.Context, tx *gorm.DB, ids []int64, providerIDs []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages m SET status = ?,
		provider_message_id = coalesce(nullif(v.pid, ''), m.provider_message_id), sent_at = now(), error_code = '', error_reason = ''
		FROM unnest(?::bigint[], ?::text[]) AS v(id, pid)
		WHERE m.id = v.id AND m.status IN ('queued', 'sending')`,
		models.StatusSent, bigintArray(ids), textArray(providerIDs)).Error
	return dbError(err, "Message")
}

// FinishAttempt records the outcome of a send: sent with the platform's id,
// back to queued for a retry, or failed with a code and a reason a person
// can act on.
func (s *MessageStore) FinishAttempt(ctx context.Context, tx *gorm.DB, id int64, status models.MessageStatus, providerMessageID, code, reason string) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages SET status = ?,
		provider_message_id = coalesce(nullif(?, ''), provider_message_id),
		sent_at = CASE WHEN ? = 'sent' THEN now() ELSE sent_at END,
		error_code = ?, error_reason = ?
		WHERE id = ? AND status IN ('queued', 'sending')`,
		string(status), providerMessageID, string(status), code, reason, id).Error
	return dbError(err, "Message")
}

// SetAside marks an inbound message that could not be processed: it is
// done with (processed), failed, with a code and a reason staff can read.
func (s *MessageStore) SetAside(ctx context.Context, tx *gorm.DB, id int64, code, reason string) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE messages SET processed_at = now(), status = ?, error_code = ?, error_reason = ?
		WHERE id = ? AND direction = 'in'`, models.StatusFailed, code, reason, id).Error
	return dbError(err, "Message")
}

// HandOffAfterFailure hands the contact's open conversation, if any, to a
// person, noting why; its pending timers and AI request are dropped. It
// returns the conversation newly handed off (0: none, or it was already).
func (s *ConversationStore) HandOffAfterFailure(ctx context.Context, tx *gorm.DB, contactID int64, reason string) (newly int64, err error) {
	var row struct {
		ID     int64
		Before string
	}
	err = gormFor(ctx, s.db, s.crypto, tx).Raw(`WITH open AS (
			SELECT id, status FROM conversations WHERE contact_id = ? AND status NOT IN ('ended', 'error') FOR UPDATE)
		UPDATE conversations c SET status = ?, error = ?, pending_enc = NULL, wait_seq = wait_seq + 1, updated_at = now(),
		  handoff_at = CASE WHEN open.status = 'handoff' THEN c.handoff_at ELSE now() END
		FROM open WHERE c.id = open.id RETURNING c.id, open.status AS before`, contactID, models.ConversationHandoff, reason).Scan(&row).Error
	if err != nil || row.Before == string(models.ConversationHandoff) {
		return 0, dbError(err, "Conversation")
	}
	return row.ID, nil
}
