package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// Recipient statuses: planned and waiting (pending), its message written
// and queued (queued), left out with a reason (excluded), or not messaged
// because the broadcast was cancelled (cancelled).
const (
	RecipientPending   = "pending"
	RecipientQueued    = "queued"
	RecipientExcluded  = "excluded"
	RecipientCancelled = "cancelled"
)

// Recipient is one planned member of a broadcast's audience, or one line
// of its CSV.
type Recipient struct {
	ContactID int64 // 0: none (a line whose number is invalid)
	Line      int   // its CSV line; 0 for a filtered audience
	Status    string
	Reason    string            // why excluded
	Language  string            // the template's language for them
	Vars      map[string]string // its CSV columns (sealed); nil for a filtered audience
}

// recipientChunk is how many recipients one statement writes: large
// enough that 100,000 take a handful of round trips.
const recipientChunk = 10000

// AddRecipients writes the broadcast's recipients inside tx, a few
// multi-row statements for any number (ids taken first: CSV variables are
// sealed, bound to the row's id).
func (s *BroadcastStore) AddRecipients(ctx context.Context, tx *gorm.DB, broadcastID int64, rs []Recipient) error {
	g := tx.WithContext(ctx)
	for len(rs) > 0 {
		chunk := rs[:min(len(rs), recipientChunk)]
		rs = rs[len(chunk):]
		n := len(chunk)
		var blocks []int64
		if err := g.Raw(`SELECT nextval(pg_get_serial_sequence('broadcast_recipients', 'id')) FROM generate_series(1, ?)`, (n+idBlock-1)/idBlock).Scan(&blocks).Error; err != nil {
			return dbError(err, "Recipient")
		}
		ids := make([]int64, 0, len(blocks)*idBlock)
		for _, start := range blocks {
			for i := range int64(idBlock) {
				ids = append(ids, start+i)
			}
		}
		ids = ids[:n] // the last block's rest goes unused
		contacts, lines := make([]int64, n), make([]int32, n)
		statuses, reasons, langs, vars := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, r := range chunk {
			contacts[i], lines[i], statuses[i], reasons[i], langs[i] = r.ContactID, int32(r.Line), r.Status, r.Reason, r.Language
			if len(r.Vars) > 0 {
				plain, err := json.Marshal(r.Vars)
				if err != nil {
					return err
				}
				sealed := s.crypto.Ring.Encrypt(plain, crypt.Ref{Table: "broadcast_recipients", Column: "vars_enc", ID: ids[i]})
				vars[i] = base64.StdEncoding.EncodeToString(sealed)
			}
		}
		err := g.Exec(`INSERT INTO broadcast_recipients (id, broadcast_id, contact_id, line, status, reason, language, vars_enc)
			SELECT u.id, ?, nullif(u.contact, 0), u.line, u.status, u.reason, u.lang, CASE WHEN u.vars = '' THEN NULL ELSE decode(u.vars, 'base64') END
			FROM unnest(?::bigint[], ?::bigint[], ?::integer[], ?::text[], ?::text[], ?::text[], ?::text[]) AS u(id, contact, line, status, reason, lang, vars)`,
			broadcastID, bigintArray(ids), bigintArray(contacts), intArray(lines), textArray(statuses), textArray(reasons), textArray(langs), textArray(vars)).Error
		if err != nil {
			return dbError(err, "Recipient")
		}
	}
	return nil
}

// AudienceMember is a contact a filter picked, with what decides whether
// a broadcast may reach them.
type AudienceMember struct {
	ContactID  int64
	Language   string
	OptedOut   bool
	Invalid    bool
	ConvStatus string            // of their latest conversation ("": none)
	Vars       map[string]string // its variables, when asked for
}

type audienceRow struct {
	ID           int64
	Language     string
	OptedOut     bool
	Invalid      bool
	ConvID       *int64
	ConvStatus   string
	VariablesEnc []byte
}

// latestConversation joins each contact c to its latest conversation, cv.
const latestConversation = `LEFT JOIN LATERAL (SELECT id, status, flow_id, node, variables_enc FROM conversations
	WHERE contact_id = c.id ORDER BY started_at DESC, id DESC LIMIT 1) cv ON true`

// audienceWhere is the condition on contacts c (and their latest
// conversation cv) of a's filter on ch, but for its variables.
func audienceWhere(ch models.Channel, a models.Audience) (string, []any) {
	where := []string{"c.channel = ?"}
	args := []any{string(ch)}
	if a.FlowID != "" {
		where, args = append(where, "cv.flow_id = ?"), append(args, a.FlowID)
	}
	switch a.State {
	case "":
	case string(models.ConversationActive), string(models.ConversationEnded), string(models.ConversationHandoff), string(models.ConversationPaused):
		where, args = append(where, "cv.status = ?"), append(args, a.State)
	default:
		where, args = append(where, "cv.node = ? AND cv.status NOT IN ('ended', 'error')"), append(args, a.State)
	}
	const lastMessage = `(SELECT m.created_at FROM messages m WHERE m.contact_id = c.id ORDER BY m.seq DESC LIMIT 1)`
	if a.LastMessageAfter != nil {
		where, args = append(where, lastMessage+" >= ?"), append(args, *a.LastMessageAfter)
	}
	if a.LastMessageBefore != nil {
		where, args = append(where, lastMessage+" < ?"), append(args, *a.LastMessageBefore)
	}
	return strings.Join(where, " AND "), args
}

// AudienceLanguages returns the languages of the contacts on ch, a
// contact without one counted as def's.
func (s *BroadcastStore) AudienceLanguages(ctx context.Context, tx *gorm.DB, ch models.Channel, def string) ([]string, error) {
	var langs []string
	err := tx.WithContext(ctx).Raw(`SELECT DISTINCT coalesce(nullif(language, ''), ?) FROM contacts WHERE channel = ?`, def, string(ch)).Scan(&langs).Error
	return langs, dbError(err, "Contact")
}

// PlanAudience writes, inside tx and with one statement however many
// there are, a recipient for each contact on ch that a's filter picks (a
// filter without variables: those need decrypting, AudiencePage), each
// pending or excluded as AudienceMember's reasons go: an invalid number,
// opted out, in a hand-off, or a language (def when they have none) among
// unapproved. It returns how many it wrote by reason ("": reached).
func (s *BroadcastStore) PlanAudience(ctx context.Context, tx *gorm.DB, broadcastID int64, ch models.Channel, a models.Audience, def string, unapproved []string) (map[string]int, error) {
	where, args := audienceWhere(ch, a)
	g := tx.WithContext(ctx)
	err := g.Exec(`INSERT INTO broadcast_recipients (broadcast_id, contact_id, status, reason, language)
		SELECT ?, x.id, CASE WHEN x.reason = '' THEN 'pending' ELSE 'excluded' END, x.reason, CASE WHEN x.reason = '' THEN x.lang ELSE '' END
		FROM (SELECT c.id, coalesce(nullif(c.language, ''), ?) AS lang,
				CASE WHEN c.address_invalid THEN '`+models.ExcludedInvalidNumber+`'
					WHEN c.opted_out_at IS NOT NULL THEN '`+models.ExcludedOptedOut+`'
					WHEN cv.status IN ('handoff', 'paused') THEN '`+models.ExcludedHandoff+`'
					WHEN coalesce(nullif(c.language, ''), ?) = ANY(?::text[]) THEN '`+models.ExcludedNoTemplate+`'
					ELSE '' END AS reason
			FROM contacts c `+latestConversation+` WHERE `+where+` ORDER BY c.id) x`,
		append([]any{broadcastID, def, def, textArray(unapproved)}, args...)...).Error
	if err != nil {
		return nil, dbError(err, "Recipient")
	}
	var rows []struct {
		Reason string
		N      int
	}
	if err := g.Raw(`SELECT reason, count(*) AS n FROM broadcast_recipients WHERE broadcast_id = ? GROUP BY reason`, broadcastID).Scan(&rows).Error; err != nil {
		return nil, dbError(err, "Recipient")
	}
	counts := make(map[string]int, len(rows))
	for _, r := range rows {
		counts[r.Reason] = r.N
	}
	return counts, nil
}

// AudiencePage returns up to limit contacts on ch after afterID (by id)
// that a's filter picks, but for its variables, which are sealed: with
// withVars each member's are decrypted for the caller to compare.
func (s *BroadcastStore) AudiencePage(ctx context.Context, tx *gorm.DB, ch models.Channel, a models.Audience, afterID int64, limit int, withVars bool) ([]AudienceMember, error) {
	where, args := audienceWhere(ch, a)
	where += " AND c.id > ?"
	args = append(args, afterID)
	vars := "NULL::bytea"
	if withVars {
		vars = "cv.variables_enc"
	}
	var rows []audienceRow
	err := tx.WithContext(ctx).Raw(`SELECT c.id, c.language, c.opted_out_at IS NOT NULL AS opted_out, c.address_invalid AS invalid,
			cv.id AS conv_id, coalesce(cv.status, '') AS conv_status, `+vars+` AS variables_enc
		FROM contacts c `+latestConversation+`
		WHERE `+where+` ORDER BY c.id LIMIT ?`, append(args, limit)...).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Contact")
	}
	out := make([]AudienceMember, len(rows))
	for i, r := range rows {
		out[i] = AudienceMember{ContactID: r.ID, Language: r.Language, OptedOut: r.OptedOut, Invalid: r.Invalid, ConvStatus: r.ConvStatus}
		if withVars && r.ConvID != nil && len(r.VariablesEnc) > 0 {
			if out[i].Vars, err = s.openVars(r.VariablesEnc, crypt.Ref{Table: "conversations", Column: "variables_enc", ID: *r.ConvID}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// openVars decrypts a sealed JSON object of variables.
func (s *BroadcastStore) openVars(sealed []byte, ref crypt.Ref) (map[string]string, error) {
	plain, err := s.crypto.Ring.Decrypt(sealed, ref)
	if err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "Variables are unreadable.")
	}
	vars := map[string]string{}
	if err := json.Unmarshal(plain, &vars); err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "Variables are unreadable.")
	}
	return vars, nil
}

// Claimed is a pending recipient taken by the driver, locked until its
// transaction ends, with what its message needs.
type Claimed struct {
	ID         int64 // the recipient's row
	ContactID  int64
	Channel    models.Channel
	Language   string
	OptedOut   bool
	ConvID     *int64
	ConvStatus string
	// Vars are the recipient's variables: its latest conversation's, with
	// its CSV columns over them.
	Vars map[string]string
}

type claimedRow struct {
	ID           int64
	ContactID    int64
	Channel      string
	Language     string
	OptedOut     bool
	VarsEnc      []byte
	ConvID       *int64
	ConvStatus   string
	VariablesEnc []byte
}

// Claim locks up to n of the broadcast's pending recipients, skipping any
// another driver holds, in plan order.
func (s *BroadcastStore) Claim(ctx context.Context, tx *gorm.DB, broadcastID int64, n int) ([]Claimed, error) {
	var rows []claimedRow
	err := tx.WithContext(ctx).Raw(`SELECT r.id, r.contact_id, c.channel, r.language, c.opted_out_at IS NOT NULL AS opted_out, r.vars_enc,
			cv.id AS conv_id, coalesce(cv.status, '') AS conv_status, cv.variables_enc
		FROM (SELECT id, contact_id, language, vars_enc FROM broadcast_recipients WHERE broadcast_id = ? AND status = 'pending'
			ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) r
		JOIN contacts c ON c.id = r.contact_id `+latestConversation+` ORDER BY r.id`, broadcastID, n).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Recipient")
	}
	out := make([]Claimed, len(rows))
	for i, r := range rows {
		out[i] = Claimed{ID: r.ID, ContactID: r.ContactID, Channel: models.Channel(r.Channel), Language: r.Language, OptedOut: r.OptedOut,
			ConvID: r.ConvID, ConvStatus: r.ConvStatus, Vars: map[string]string{}}
		if r.ConvID != nil && len(r.VariablesEnc) > 0 {
			if out[i].Vars, err = s.openVars(r.VariablesEnc, crypt.Ref{Table: "conversations", Column: "variables_enc", ID: *r.ConvID}); err != nil {
				return nil, err
			}
		}
		if len(r.VarsEnc) > 0 {
			csv, err := s.openVars(r.VarsEnc, crypt.Ref{Table: "broadcast_recipients", Column: "vars_enc", ID: r.ID})
			if err != nil {
				return nil, err
			}
			for k, v := range csv {
				out[i].Vars[k] = v
			}
		}
	}
	return out, nil
}

// MarkQueued records, inside tx, the message written for each recipient
// (ids[i] got messageIDs[i]).
func (s *BroadcastStore) MarkQueued(ctx context.Context, tx *gorm.DB, ids, messageIDs []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := tx.WithContext(ctx).Exec(`UPDATE broadcast_recipients r SET status = 'queued', message_id = nullif(u.m, 0), queued_at = now()
		FROM unnest(?::bigint[], ?::bigint[]) AS u(id, m) WHERE r.id = u.id`, bigintArray(ids), bigintArray(messageIDs)).Error
	return dbError(err, "Recipient")
}

// Exclude leaves recipients out inside tx, each with its reason (one who
// opted out since the plan, say).
func (s *BroadcastStore) Exclude(ctx context.Context, tx *gorm.DB, ids []int64, reasons []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := tx.WithContext(ctx).Exec(`UPDATE broadcast_recipients r SET status = 'excluded', reason = u.reason
		FROM unnest(?::bigint[], ?::text[]) AS u(id, reason) WHERE r.id = u.id`, bigintArray(ids), textArray(reasons)).Error
	return dbError(err, "Recipient")
}

// Unqueue takes back, inside tx, the broadcast's messages that are queued
// and not yet begun (a pause or a cancel): they are removed, never having
// left, and their recipients are pending again. A message whose attempt
// began is left to finish (its row is locked FOR UPDATE, so one a send is
// beginning is seen after it began). It returns how many it took back.
func (s *BroadcastStore) Unqueue(ctx context.Context, tx *gorm.DB, broadcastID int64) (int, error) {
	g := tx.WithContext(ctx)
	var ids []int64
	err := g.Raw(`SELECT m.id FROM broadcast_recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.broadcast_id = ? AND r.status = 'queued' AND m.status = 'queued' ORDER BY m.id FOR UPDATE OF m`, broadcastID).Scan(&ids).Error
	if err != nil || len(ids) == 0 {
		return 0, dbError(err, "Recipient")
	}
	if err := g.Exec(`UPDATE broadcast_recipients SET status = 'pending', message_id = NULL, queued_at = NULL WHERE message_id = ANY(?::bigint[])`, bigintArray(ids)).Error; err != nil {
		return 0, dbError(err, "Recipient")
	}
	if err := g.Exec(`DELETE FROM messages WHERE id = ANY(?::bigint[])`, bigintArray(ids)).Error; err != nil {
		return 0, dbError(err, "Message")
	}
	return len(ids), nil
}

// Finish ends the broadcast's recipients inside tx: those still pending
// are cancelled (cancel only: a finished plan has none), and the CSV
// variables, needed no more, are cleared.
func (s *BroadcastStore) Finish(ctx context.Context, tx *gorm.DB, broadcastID int64) error {
	g := tx.WithContext(ctx)
	if err := g.Exec(`UPDATE broadcast_recipients SET status = 'cancelled' WHERE broadcast_id = ? AND status = 'pending'`, broadcastID).Error; err != nil {
		return dbError(err, "Recipient")
	}
	return dbError(g.Exec(`UPDATE broadcast_recipients SET vars_enc = NULL WHERE broadcast_id = ? AND vars_enc IS NOT NULL`, broadcastID).Error, "Recipient")
}

// HasPending reports whether recipients of the broadcast wait for their
// message (locked ones included).
func (s *BroadcastStore) HasPending(ctx context.Context, tx *gorm.DB, broadcastID int64) (bool, error) {
	var yes bool
	err := tx.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM broadcast_recipients WHERE broadcast_id = ? AND status = 'pending')`, broadcastID).Scan(&yes).Error
	return yes, dbError(err, "Recipient")
}
