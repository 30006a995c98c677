package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// auditLock is the advisory lock key that serialises appends to the chain.
const auditLock = 7212002

// chainHash is an entry's hash: the previous entry's hash and the entry's
// plaintext, each part length-prefixed so no two entries hash alike.
// Keyed entries (all but those written before migration 00026, see
// KeyedAction) take an HMAC under the chain key, which the database never
// sees; earlier ones kept plain SHA-256. The role, request id and address came later:
// entries without any hash as those before them did.
func (s *AuditStore) chainHash(keyed bool, prev []byte, e *models.AuditEvent, details []byte) []byte {
	var h hash.Hash
	if keyed {
		h = s.crypto.Index.MAC(crypt.DomainAuditChain)
	} else {
		h = sha256.New()
	}
	parts := [][]byte{prev, []byte(e.At.Format(time.RFC3339Nano)), []byte(e.ActorID), []byte(e.Action), []byte(e.SubjectType), []byte(e.SubjectID), details}
	if e.ActorRole != "" || e.RequestID != "" || e.IP != "" {
		parts = append(parts, []byte(e.ActorRole), []byte(e.RequestID), []byte(e.IP))
	}
	for _, part := range parts {
		h.Write([]byte(strconv.Itoa(len(part)) + ":"))
		h.Write(part)
	}
	return h.Sum(nil)
}

// Checkpoint is a place in the chain an operator keeps outside the
// database: an entry's seq and its MAC, and how many entries from the
// first are plain SHA-256 (written before the chain was keyed). Written as
// "seq:hex:unkeyed".
type Checkpoint struct {
	Seq     int64
	MAC     []byte
	Unkeyed int64
}

// String is the checkpoint as `parley audit checkpoint` prints it.
func (c Checkpoint) String() string {
	return strconv.FormatInt(c.Seq, 10) + ":" + hex.EncodeToString(c.MAC) + ":" + strconv.FormatInt(c.Unkeyed, 10)
}

// ParseCheckpoint reads a checkpoint written by String. EINVALID when it
// is not one.
func ParseCheckpoint(text string) (Checkpoint, error) {
	parts := strings.Split(strings.TrimSpace(text), ":")
	bad := models.Errorf(models.EINVALID, "A checkpoint is SEQ:MAC:UNKEYED as `parley audit checkpoint` prints it.")
	if len(parts) != 3 {
		return Checkpoint{}, bad
	}
	n, err := strconv.ParseInt(parts[0], 10, 64)
	b, herr := hex.DecodeString(parts[1])
	u, uerr := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || n < 1 || herr != nil || len(b) != sha256.Size || uerr != nil || u < 0 || u >= n {
		return Checkpoint{}, bad
	}
	return Checkpoint{Seq: n, MAC: b, Unkeyed: u}, nil
}

// ChainState is what a verification found: the entries that hold, and how
// many of them, from the first, were written before the chain was keyed
// (plain SHA-256: a rewrite of them alone would show only at the first
// keyed entry, which links to them).
type ChainState struct {
	Entries int
	Unkeyed int64
}

// Checkpoint verifies the whole chain and returns its head, for the
// operator to keep elsewhere. Errors as Verify's; EINVALID on an empty log.
func (s *AuditStore) Checkpoint(ctx context.Context) (Checkpoint, error) {
	var head Checkpoint
	state, err := s.walk(ctx, func(seq int64, mac []byte) { head = Checkpoint{Seq: seq, MAC: mac} })
	if err == nil && head.Seq == 0 {
		err = models.Errorf(models.EINVALID, "The audit log is empty: there is nothing to checkpoint yet.")
	}
	head.Unkeyed = state.Unkeyed
	return head, err
}

// Verify walks the whole chain in order and checks that every entry links
// to the one before it and that its MAC matches its contents. It returns
// how many entries it checked; a broken chain is an EINTERNAL error naming
// the first entry (by seq) that does not hold.
func (s *AuditStore) Verify(ctx context.Context) (int, error) {
	state, err := s.walk(ctx, nil)
	return state.Entries, err
}

// Check is Verify that also says how many entries are plain SHA-256.
func (s *AuditStore) Check(ctx context.Context) (ChainState, error) {
	return s.walk(ctx, nil)
}

// VerifyFrom is Check that also holds the chain to cp: the entry at cp's
// seq still carries cp's MAC (so nothing at or before it changed, even
// re-chained by someone holding the key), the log still reaches it (so
// nothing up to it was cut off the end), and the plain entries end where
// they did: EINTERNAL when the chain itself is broken (as Check), ECONFLICT
// when it holds but does not match cp.
func (s *AuditStore) VerifyFrom(ctx context.Context, cp Checkpoint) (ChainState, error) {
	var at []byte
	state, err := s.walk(ctx, func(seq int64, mac []byte) {
		if seq == cp.Seq {
			at = mac
		}
	})
	n := state.Entries
	switch {
	case err != nil:
		return state, err
	case at == nil:
		return state, models.Errorf(models.ECONFLICT, "The audit log ends at entry %d, before the checkpoint at %d: entries were cut.", n, cp.Seq)
	case !bytes.Equal(at, cp.MAC):
		return state, models.Errorf(models.ECONFLICT, "The audit log does not match the checkpoint: entry %d's MAC is not the one kept, so entries up to it were changed (and the chain rewritten to hide it).", cp.Seq)
	case state.Unkeyed != cp.Unkeyed:
		return state, models.Errorf(models.ECONFLICT, "The audit chain is keyed after entry %d, but after entry %d at the checkpoint: the boundary moved.", state.Unkeyed, cp.Unkeyed)
	}
	return state, nil
}

// unkeyed is where the plain entries end, taken from the first KeyedAction
// entry (0 without one: every entry is keyed). The database's word for it
// is only a claim: walk checks that entry with the key, and that it says
// how many entries are before it, so a moved, dropped or forged boundary
// breaks the chain.
func (s *AuditStore) unkeyed(ctx context.Context, g *gorm.DB) (int64, error) {
	var first int64
	err := g.Raw(`SELECT coalesce(min(seq), 1) FROM audit_events WHERE action = ?`, KeyedAction).Scan(&first).Error
	return first - 1, dbError(err, "Audit")
}

// walk verifies the chain, calling each (if not nil) with every entry's
// seq and MAC once it holds.
func (s *AuditStore) walk(ctx context.Context, each func(seq int64, mac []byte)) (ChainState, error) {
	g := gormFor(ctx, s.db, s.crypto, nil)
	unkeyed, err := s.unkeyed(ctx, g)
	state := ChainState{Unkeyed: unkeyed}
	if err != nil {
		return state, err
	}
	var prev []byte
	var after int64
	for {
		var rows []auditRow
		if err := g.Raw(`SELECT id, seq, at, coalesce(actor_id::text, '') AS actor_id, actor_role, action, subject_type, subject_id, request_id, ip,
				details_enc, prev_hash, hash, keyed
			FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 500`, after).Scan(&rows).Error; err != nil {
			return state, dbError(err, "Audit")
		}
		if len(rows) == 0 {
			return state, nil
		}
		for _, r := range rows {
			broken := func(why string) error {
				return models.Errorf(models.EINTERNAL, "The audit chain is broken at entry %d: %s.", r.Seq, why)
			}
			if r.Seq != after+1 {
				return state, broken(fmt.Sprintf("entry %d is missing", after+1))
			}
			if !bytes.Equal(r.PrevHash, prev) {
				return state, broken("it does not link to the entry before it")
			}
			details, err := s.crypto.Ring.Decrypt(r.DetailsEnc, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: r.ID})
			if err != nil {
				return state, broken("its details do not open")
			}
			e := &models.AuditEvent{At: r.At.UTC(), ActorID: r.ActorID, ActorRole: models.Role(r.ActorRole), Action: r.Action,
				SubjectType: r.SubjectType, SubjectID: r.SubjectID, RequestID: r.RequestID, IP: r.IP}
			if !bytes.Equal(s.chainHash(r.Seq > unkeyed, r.PrevHash, e, details), r.Hash) {
				if unkeyed == 0 && !r.Keyed {
					// Still a failure: the database's word that the
					// entry is plain proves nothing. Only more helpful.
					return state, broken("its contents do not match its MAC, and no entry marks where plain entries end: " +
						"either no Parley from migration 00026 on has appended yet (its first audited action marks it) or the log was rewritten without its key")
				}
				return state, broken("its contents do not match its MAC")
			}
			if r.Seq == unkeyed+1 && unkeyed > 0 {
				var said struct{ Unkeyed int64 }
				if json.Unmarshal(details, &said) != nil || said.Unkeyed != unkeyed {
					return state, broken("it marks where the plain entries end, but not at the entry before it")
				}
			}
			if each != nil {
				each(r.Seq, r.Hash)
			}
			prev, after = r.Hash, r.Seq
			state.Entries++
		}
	}
}

type auditRow struct {
	ID          int64
	Seq         int64
	At          time.Time
	ActorID     string
	ActorRole   string
	Action      string
	SubjectType string
	SubjectID   string
	RequestID   string
	IP          string
	DetailsEnc  []byte
	PrevHash    []byte
	Hash        []byte
	Keyed       bool
}
