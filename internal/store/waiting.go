package store

import "context"

// Waiting counts the conversations waiting for a person: handed off, taken
// by nobody, and not answered since their latest hand-off (a supervisor's
// reply answers one as a take does). It reads conversations_waiting_idx
// alone, so the console can ask it for every page without a scan.
func (s *ConversationStore) Waiting(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM conversations
		WHERE status = 'handoff' AND assigned_to IS NULL
		  AND (handoff_at IS NULL OR handoff_answered_at IS NULL OR handoff_answered_at < handoff_at)`).Scan(&n)
	return n, dbError(err, "Conversation")
}
