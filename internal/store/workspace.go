package store

import (
	"context"
	"strings"
	"time"

	"github.com/parley-chat/parley/models"
)

// Workspace views: which conversations the workspace's list shows.
const (
	WorkAll     = "all"     // every contact who has written or been written to
	WorkMine    = "mine"    // hand-offs (and pauses) the staff member holds
	WorkWaiting = "waiting" // hand-offs no person has answered yet
	WorkFailed  = "failed"  // contacts with sends that failed and were not sent again
)

// WorkFilter chooses the workspace's list.
type WorkFilter struct {
	View    string // one of the Work* views; "" is WorkAll
	StaffID string // who "mine" is
	// Contacts, when not nil, keeps only these contacts (what a search
	// found); empty lists nobody.
	Contacts []int64
	Limit    int
}

// WorkItem is one conversation (one contact) of the workspace's list.
type WorkItem struct {
	// Last is the contact's latest message and the contact, decrypted.
	Last models.MessageHit
	// ConversationID and Status are of the contact's latest conversation
	// (0 and "" when none; an ended one shows as ended).
	ConversationID int64
	Status         models.ConversationStatus
	HeldBy         string // staff id holding it; "" when nobody
	// Waiting: handed off and no person has answered since.
	Waiting bool
	Failed  int // sends that failed and were not sent again
	// WaitingSince is when the person's first message nobody has answered
	// came: nil when the latest message is Parley's.
	WaitingSince *time.Time
}

// workViews select the contacts of each view; the ? is the staff id
// (mine).
var workViews = map[string]string{
	WorkAll:     `SELECT id AS contact_id FROM contacts WHERE ?::text IS NOT NULL`,
	WorkMine:    `SELECT contact_id FROM conversations WHERE status IN ('handoff', 'paused') AND assigned_to::text = ?`,
	WorkWaiting: `SELECT contact_id FROM conversations WHERE ?::text IS NOT NULL AND status = 'handoff' AND ` + handoffUnanswered,
	WorkFailed:  `SELECT DISTINCT f.contact_id FROM messages f WHERE ?::text IS NOT NULL AND ` + failedNotResent,
}

// handoffUnanswered holds for a handed-off conversation no person has
// taken or replied to since its hand-off.
const handoffUnanswered = `(handoff_answered_at IS NULL OR handoff_answered_at < handoff_at)`

// Workspace lists the view's conversations, the latest activity first, up
// to f.Limit (at most 200), each with its latest message decrypted. Every
// contact costs one index probe for its latest message; only the page is
// decrypted.
func (s *MessageStore) Workspace(ctx context.Context, f WorkFilter) ([]WorkItem, error) {
	view, ok := workViews[f.View]
	if f.View == "" {
		view, ok = workViews[WorkAll], true
	}
	if !ok {
		return nil, models.Errorf(models.EINVALID, "Unknown view.")
	}
	if f.Contacts != nil && len(f.Contacts) == 0 {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 || limit > 200 {
		limit = 200
	}
	args := []any{f.StaffID}
	where := ""
	if f.Contacts != nil {
		where = " WHERE v.contact_id IN ?"
		args = append(args, f.Contacts)
	}
	args = append(args, limit)
	g := gormFor(ctx, s.db, s.crypto, nil)
	var lasts []int64
	err := g.Raw(`SELECT l.id FROM (`+view+`) v
		CROSS JOIN LATERAL (SELECT m.id, m.created_at FROM messages m WHERE m.contact_id = v.contact_id ORDER BY m.seq DESC LIMIT 1) l`+where+`
		ORDER BY l.created_at DESC, l.id DESC LIMIT ?`, args...).Scan(&lasts).Error
	if err != nil {
		return nil, dbError(err, "Message")
	}
	hits, err := s.load(ctx, lasts)
	if err != nil {
		return nil, err
	}
	contacts := make([]int64, len(hits))
	for i, h := range hits {
		contacts[i] = h.Message.ContactID
	}
	states, err := s.workStates(ctx, contacts)
	if err != nil {
		return nil, err
	}
	items := make([]WorkItem, 0, len(hits))
	for _, h := range hits {
		it := states[h.Message.ContactID]
		it.Last = h
		items = append(items, it)
	}
	return items, nil
}

// workStates reads what the list shows of each contact besides its latest
// message: its latest conversation, failed sends and how long it waits.
func (s *MessageStore) workStates(ctx context.Context, contacts []int64) (map[int64]WorkItem, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT x.contact_id, coalesce(cv.id, 0), coalesce(cv.status, ''), coalesce(cv.assigned_to::text, ''),
			coalesce(cv.status = 'handoff' AND `+strings.ReplaceAll(handoffUnanswered, "handoff_", "cv.handoff_")+`, false),
			(SELECT count(*) FROM messages f WHERE f.contact_id = x.contact_id AND `+failedNotResent+`),
			(SELECT min(i.created_at) FROM messages i WHERE i.contact_id = x.contact_id AND i.direction = 'in'
				AND i.seq > coalesce((SELECT max(o.seq) FROM messages o WHERE o.contact_id = x.contact_id AND o.direction = 'out'), 0))
		FROM unnest($1::bigint[]) x(contact_id)
		LEFT JOIN LATERAL (SELECT id, status, assigned_to, handoff_at, handoff_answered_at FROM conversations
			WHERE contact_id = x.contact_id ORDER BY started_at DESC, id DESC LIMIT 1) cv ON true`, contacts)
	if err != nil {
		return nil, dbError(err, "Conversation")
	}
	defer rows.Close()
	out := make(map[int64]WorkItem, len(contacts))
	for rows.Next() {
		var (
			id     int64
			status string
			it     WorkItem
		)
		if err := rows.Scan(&id, &it.ConversationID, &status, &it.HeldBy, &it.Waiting, &it.Failed, &it.WaitingSince); err != nil {
			return nil, dbError(err, "Conversation")
		}
		it.Status = models.ConversationStatus(status)
		out[id] = it
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err, "Conversation")
	}
	return out, nil
}

// WorkFingerprint changes when the workspace's list may have: a message
// written (the latest ids, counted over the last blocks every instance
// takes ids from, so one instance's write below another's is seen) or a
// conversation handed off, taken, paused or failed. It holds nothing
// sealed.
func (s *MessageStore) WorkFingerprint(ctx context.Context) (string, error) {
	var fp string
	err := s.db.Pool.QueryRow(ctx, `SELECT concat_ws(':',
			(SELECT count(*) || '/' || coalesce(max(id), 0) FROM messages WHERE id > (SELECT coalesce(max(id), 0) FROM messages) - 64 * 256),
			(SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'failed' AND created_at > now() - interval '7 days'),
			(SELECT count(*) || '/' || coalesce(sum(extract(epoch FROM updated_at) + coalesce(extract(epoch FROM assigned_at), 0) + coalesce(extract(epoch FROM handoff_answered_at), 0))::bigint, 0) FROM conversations WHERE status IN ('handoff', 'paused')),
			(SELECT count(*) FROM conversations WHERE status = 'active'))`).Scan(&fp)
	return fp, dbError(err, "Message")
}
