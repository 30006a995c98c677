package store

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"gorm.io/gorm"
)

// A job's args name a contact by contact_id or in a batch's contact_ids,
// its messages by message_id, held, message_ids or a send batch's runs,
// its attachments by media_id, at any depth (an event's are under data).
// With personal events on, an event's data also carries the number and the
// words. The match is by key, not by value: ids of contacts, messages and
// attachments come from different sequences and collide.
const jobsNamingContact = `lax $.** ? (@.contact_id == $c || @.contact_ids == $c || @.message_id == $m || @.held == $m
	|| @.message_ids == $m || @.runs[*] == $m || @.media_id == $d)`

// jobRefs are the ids by which the queue names one contact.
type jobRefs struct {
	Contact  int64   `json:"c"`
	Messages []int64 `json:"m"`
	Media    []int64 `json:"d"`
}

// jobRefsOf reads the ids by which the queue may name a contact, before
// its messages and attachments go.
func jobRefsOf(ctx context.Context, tx *gorm.DB, contactID int64) (jobRefs, error) {
	tx = tx.WithContext(ctx)
	refs := jobRefs{Contact: contactID}
	if err := tx.Raw(`SELECT id FROM messages WHERE contact_id = ?`, contactID).Scan(&refs.Messages).Error; err != nil {
		return refs, dbError(err, "Message")
	}
	if err := tx.Raw(`SELECT d.id FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = ?`, contactID).Scan(&refs.Media).Error; err != nil {
		return refs, dbError(err, "Media")
	}
	// Empty, not null, when there are none: null would match a job's
	// null field.
	refs.Messages, refs.Media = append([]int64{}, refs.Messages...), append([]int64{}, refs.Media...)
	return refs, nil
}

// eraseJobs removes a contact from the queue inside the erasure's
// transaction, in every state, since River keeps finished jobs (and their
// args) for days: a job about the contact alone is deleted, a batch's
// other contacts stay in it. A running job cannot be deleted under its
// worker: its args lose the contact and every nested string (an event's
// number and words) and are marked erased, so a retry finds nothing to do
// and an event is not delivered again. It returns how many jobs it
// deleted or changed.
func eraseJobs(ctx context.Context, tx *gorm.DB, refs jobRefs) (int64, error) {
	tx = tx.WithContext(ctx)
	vars, err := json.Marshal(refs)
	if err != nil {
		return 0, err
	}
	// Locked, so the queue neither takes an available one meanwhile (it
	// skips locked rows) nor finishes a running one under the change.
	var jobs []struct {
		ID    int64
		State string
		Args  []byte
	}
	if err := tx.Raw(`SELECT id, state::text, args FROM river_job WHERE jsonb_path_exists(args, ?::jsonpath, ?::jsonb) ORDER BY id FOR UPDATE`,
		jobsNamingContact, string(vars)).Scan(&jobs).Error; err != nil {
		return 0, dbError(err, "Job")
	}
	var drop []int64
	for _, j := range jobs {
		args, alone, err := refs.forget(j.Args, j.State == "running")
		if err != nil {
			return 0, err
		}
		if j.State != "running" && (alone || finished(j.State)) {
			drop = append(drop, j.ID)
			continue
		}
		if err := tx.Exec(`UPDATE river_job SET args = ?::jsonb WHERE id = ?`, string(args), j.ID).Error; err != nil {
			return 0, dbError(err, "Job")
		}
	}
	if len(drop) > 0 {
		if err := tx.Exec(`DELETE FROM river_job WHERE id IN ?`, drop).Error; err != nil {
			return 0, dbError(err, "Job")
		}
	}
	return int64(len(jobs)), nil
}

// finished says whether a job in this state will not run again: its
// record is kept for a while only to be looked at, so it goes whole.
func finished(state string) bool {
	return state == "completed" || state == "cancelled" || state == "discarded"
}

// forget returns a job's args without the contact: lists lose its ids. alone
// says the job was about the contact only (it names the contact, one of its
// messages or attachments as its subject, or a list held nothing else).
// shed (a running job) also drops every string below the top level and
// marks the job erased when alone.
func (r *jobRefs) forget(raw []byte, shed bool) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args map[string]any
	if err := dec.Decode(&args); err != nil {
		return nil, false, err
	}
	alone := r.walk(args, shed, true)
	if shed && alone {
		args["erased"] = true
	}
	out, err := json.Marshal(args)
	return out, alone, err
}

// walk removes the contact from one JSON object (and what it holds).
func (r *jobRefs) walk(obj map[string]any, shed, top bool) (alone bool) {
	for k, v := range obj {
		switch k {
		case "contact_id":
			alone = alone || r.is(v, []int64{r.Contact})
			continue
		case "message_id", "held":
			alone = alone || r.is(v, r.Messages)
			continue
		case "media_id":
			alone = alone || r.is(v, r.Media)
			continue
		case "contact_ids", "message_ids":
			ids := []int64{r.Contact}
			if k == "message_ids" {
				ids = r.Messages
			}
			if list, ok := v.([]any); ok {
				kept := slices.DeleteFunc(slices.Clone(list), func(x any) bool { return r.is(x, ids) })
				alone = alone || (len(kept) == 0 && len(list) > 0)
				obj[k] = kept
			}
			continue
		case "runs":
			if list, ok := v.([]any); ok {
				kept := slices.DeleteFunc(slices.Clone(list), func(run any) bool {
					ids, _ := run.([]any)
					return slices.ContainsFunc(ids, func(x any) bool { return r.is(x, r.Messages) })
				})
				alone = alone || (len(kept) == 0 && len(list) > 0)
				obj[k] = kept
			}
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			alone = r.walk(v, shed, false) || alone
		case string:
			if shed && !top {
				delete(obj, k)
			}
		}
	}
	return alone
}

// is says whether a JSON number is one of ids.
func (r *jobRefs) is(v any, ids []int64) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	id, err := n.Int64()
	return err == nil && slices.Contains(ids, id)
}

// Living says which of the contacts still exist (not erased), holding a
// share of their rows' keys for the rest of tx: an erasure, which locks
// the row first, waits for tx, and then finds and removes what tx queued.
// Asked before tx locks any of their messages: an erasure holding the
// contact waits for those, and the two would wait for each other.
func (s *ContactStore) Living(ctx context.Context, tx *gorm.DB, ids []int64) (map[int64]bool, error) {
	var found []int64
	if err := gormFor(ctx, s.db, s.crypto, tx).Raw(`SELECT id FROM contacts WHERE id = ANY(?::bigint[]) ORDER BY id FOR KEY SHARE`, bigintArray(ids)).Scan(&found).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	out := make(map[int64]bool, len(found))
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}
