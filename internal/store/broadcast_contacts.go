package store

import (
	"context"
	"encoding/base64"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// ContactsByNumber finds or creates, inside tx, the contact on ch of each
// E.164 number (distinct, valid), with a few statements for any number of
// them, and returns them by number as an AudienceMember would describe
// them. Contacts are written as the Ingestor writes them: their id taken
// first, the address sealed and indexed, an existing one left untouched.
func (s *BroadcastStore) ContactsByNumber(ctx context.Context, tx *gorm.DB, ch models.Channel, numbers []string) (map[string]AudienceMember, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	ids := s.db.allocator("contacts")
	out := make(map[string]AudienceMember, len(numbers))
	for len(numbers) > 0 {
		chunk := numbers[:min(len(numbers), recipientChunk)]
		numbers = numbers[len(chunk):]
		n := len(chunk)
		newIDs, addrs, bidxs := make([]int64, n), make([]string, n), make([]string, n)
		for i, number := range chunk {
			id, err := ids.Next(ctx, g)
			if err != nil {
				return nil, err
			}
			newIDs[i] = id
			addrs[i] = base64.StdEncoding.EncodeToString(s.crypto.Ring.EncryptString(number, crypt.Ref{Table: "contacts", Column: "address_enc", ID: id}))
			bidxs[i] = base64.StdEncoding.EncodeToString(s.crypto.Index.Exact(crypt.DomainAddress, number))
		}
		// In bidx order, as the Ingestor inserts, so concurrent writers of
		// the same contacts never deadlock.
		err := g.Exec(`INSERT INTO contacts (id, channel, address_enc, address_bidx)
			SELECT u.id, ?, decode(u.addr, 'base64'), decode(u.bidx, 'base64')
			FROM unnest(?::bigint[], ?::text[], ?::text[]) AS u(id, addr, bidx) ORDER BY decode(u.bidx, 'base64')
			ON CONFLICT (channel, address_bidx) DO NOTHING`, string(ch), bigintArray(newIDs), textArray(addrs), textArray(bidxs)).Error
		if err != nil {
			return nil, dbError(err, "Contact")
		}
		var rows []contactRow
		err = g.Select("id", "address_enc", "address_bidx").Where("channel = ? AND address_bidx IN (SELECT decode(unnest(?::text[]), 'base64'))", string(ch), textArray(bidxs)).
			Find(&rows).Error
		if err != nil {
			return nil, dbError(err, "Contact")
		}
		wanted := make(map[string]bool, n)
		for _, number := range chunk {
			wanted[number] = true
		}
		found := make([]int64, 0, n)
		byID := make(map[int64]string, n)
		for _, r := range rows {
			// The index is truncated: confirm on the decrypted address.
			if wanted[r.Address] {
				found, byID[r.ID] = append(found, r.ID), r.Address
			}
		}
		var members []audienceRow
		err = g.Raw(`SELECT c.id, c.language, c.opted_out_at IS NOT NULL AS opted_out, c.address_invalid AS invalid, coalesce(cv.status, '') AS conv_status
			FROM contacts c `+latestConversation+` WHERE c.id = ANY(?::bigint[])`, bigintArray(found)).Scan(&members).Error
		if err != nil {
			return nil, dbError(err, "Contact")
		}
		for _, m := range members {
			out[byID[m.ID]] = AudienceMember{ContactID: m.ID, Language: m.Language, OptedOut: m.OptedOut, Invalid: m.Invalid, ConvStatus: m.ConvStatus}
		}
	}
	return out, nil
}
