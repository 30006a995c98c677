package store

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/crypt"
)

// Fingerprint is a keyed fingerprint of what someone typed (a search, an
// email at a failed sign-in), for the audit log, which never keeps the
// text itself: the same text, in any case or spacing, gives the same
// fingerprint, so "who searched for this" can still be asked by someone
// holding the key, and the log leaks nothing without it.
func (s *AuditStore) Fingerprint(text string) string {
	return hex.EncodeToString(s.crypto.Index.Exact(crypt.DomainAuditText, normalTyped(text)))
}

// normalTyped is typed text as fingerprinted: trimmed, lower-cased, runs
// of spaces as one, and no longer than anything anyone types on purpose.
func normalTyped(text string) string {
	const most = 1024
	if len(text) > most {
		text = text[:most]
	}
	return strings.Join(strings.Fields(strings.ToLower(text)), " ")
}

// SignInWindow is the span one row of failed sign-ins counts.
const SignInWindow = 10 * time.Minute

// maxIPLength bounds the address kept with failed sign-ins (an IPv6
// address is at most 45 characters).
const maxIPLength = 64

// SignInKeep is how long failed sign-ins are kept.
const SignInKeep = 30 * 24 * time.Hour

// signInWindowRows bounds the emails one window counts apart; failures
// for more (someone trying a list of addresses) are counted together in
// a row of their own (othersFingerprint), so a flood grows no table.
var signInWindowRows = 1000

// othersFingerprint stands for the emails past signInWindowRows.
var othersFingerprint = make([]byte, crypt.ExactSize)

// SignInFailed counts a failed sign-in (throttled: refused for too many
// failures) for the email typed, by way via (console, api), from ip.
// It is not part of the chain and takes none of its lock: anyone can fail
// to sign in, and that must neither slow the audited work of staff nor
// grow the log. One row per window, email fingerprint and way in holds
// the count, bounded whatever was typed; rows older than SignInKeep go.
func (s *AuditStore) SignInFailed(ctx context.Context, email, via, ip string, throttled bool) error {
	if len(ip) > maxIPLength {
		ip = ip[:maxIPLength]
	}
	if len(via) > 16 {
		via = via[:16]
	}
	now := s.now()
	window, fp := now.Truncate(SignInWindow), s.crypto.Index.Exact(crypt.DomainAuditText, normalTyped(email))
	t := 0
	if throttled {
		t = 1
	}
	err := gormFor(ctx, s.db, s.crypto, nil).Exec(`WITH gone AS (DELETE FROM sign_in_failures WHERE window_start < ?),
		crowded AS (SELECT count(*) >= ? AS crowded FROM (SELECT 1 FROM sign_in_failures WHERE window_start = ? LIMIT ?) w),
		known AS (SELECT EXISTS (SELECT 1 FROM sign_in_failures WHERE window_start = ? AND email_fp = ? AND via = ?) AS known)
		INSERT INTO sign_in_failures AS f (window_start, email_fp, via, attempts, throttled, first_at, last_at, last_ip)
		SELECT ?, CASE WHEN crowded.crowded AND NOT known.known THEN ?::bytea ELSE ?::bytea END, ?, 1, ?, ?, ?, ? FROM crowded, known
		ON CONFLICT (window_start, email_fp, via) DO UPDATE
		SET attempts = f.attempts + 1, throttled = f.throttled + excluded.throttled, last_at = excluded.last_at, last_ip = excluded.last_ip`,
		now.Add(-SignInKeep), signInWindowRows, window, signInWindowRows, window, fp, via,
		window, othersFingerprint, fp, via, t, now, now, ip).Error
	return dbError(err, "Sign-in failure")
}

// SignInFailure is one window's failed sign-ins for one email fingerprint.
type SignInFailure struct {
	WindowStart      time.Time
	EmailFingerprint string
	Via              string
	Attempts         int
	Throttled        int
	FirstAt, LastAt  time.Time
	LastIP           string
}

// SignInFailures returns the windows of failed sign-ins since since,
// newest first, at most limit (1–500).
func (s *AuditStore) SignInFailures(ctx context.Context, since time.Time, limit int) ([]SignInFailure, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var rows []struct {
		WindowStart     time.Time
		EmailFp         []byte
		Via             string
		Attempts        int
		Throttled       int
		FirstAt, LastAt time.Time
		LastIP          string
	}
	err := gormFor(ctx, s.db, s.crypto, nil).Raw(`SELECT window_start, email_fp, via, attempts, throttled, first_at, last_at, last_ip
		FROM sign_in_failures WHERE window_start >= ? ORDER BY window_start DESC, last_at DESC LIMIT ?`, since.Truncate(SignInWindow), limit).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Sign-in failure")
	}
	out := make([]SignInFailure, len(rows))
	for i, r := range rows {
		out[i] = SignInFailure{WindowStart: r.WindowStart, EmailFingerprint: hex.EncodeToString(r.EmailFp), Via: r.Via, Attempts: r.Attempts,
			Throttled: r.Throttled, FirstAt: r.FirstAt, LastAt: r.LastAt, LastIP: r.LastIP}
	}
	return out, nil
}
