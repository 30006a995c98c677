package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"

	"github.com/parley-chat/parley/internal/textnorm"
)

// Domain names what a blind index is over. Each domain has its own key
// derived from the blind-index key, so equal values in two domains never
// share an index.
type Domain string

// Blind index domains.
const (
	DomainAddress Domain = "contact.address" // exact: E.164 numbers or raw addresses
	DomainName    Domain = "contact.name"    // token: words of a name
	DomainBody    Domain = "message.body"    // token: words of a message
	// DomainAuditChain keys the audit log's chain (Indexer.MAC): without
	// the key a rewritten chain cannot be made to verify.
	DomainAuditChain Domain = "audit.chain"
	// DomainAuditText fingerprints what staff typed (a search, a failed
	// sign-in's email) for the audit log, which keeps no typed text.
	DomainAuditText Domain = "audit.text"
	DomainSignIn    Domain = "sign_in.key" // exact: a sign-in throttle's key (an account, an address)
	// DomainAddressTail indexes a number's last TailDigits digits, so staff
	// find a contact by the end of their number (Indexer.Tail).
	DomainAddressTail Domain = "contact.address_tail"
)

// A number's tail index keeps its last TailDigits digits in TailBits bits.
// Four digits is what the console shows everyone of a number anyway (a
// viewer sees +•••••••••0117), so the index tells no one more than that;
// and 12 bits put the 10,000 possible tails in 4,096 buckets, two or three
// tails each, so even two contacts sharing an index value need not share
// a tail. The cost is a few hundred candidates to decrypt per search in a
// million contacts, filtered on the decrypted number. Staff typing five or
// six digits are served by the same index: the rest is checked after
// decryption.
const (
	TailDigits = 4
	TailBits   = 12
)

// Truncation limits what an index reveals: collisions are expected and
// resolved by checking the decrypted value.
const (
	ExactSize = 8 // bytes kept of an exact index
	// Token indexes keep 32 bits, stored as a Postgres integer.
)

// Indexer computes blind indexes: truncated HMAC-SHA256 under per-domain
// keys. It is safe for concurrent use.
type Indexer struct {
	pools map[Domain]*sync.Pool
	keys  map[Domain][]byte
}

// NewIndexer derives the per-domain keys from the 32-byte blind-index key.
func NewIndexer(key []byte) (*Indexer, error) {
	if len(key) != 32 {
		return nil, errors.New("crypt: blind index key must have 32 bytes")
	}
	ix := &Indexer{pools: map[Domain]*sync.Pool{}, keys: map[Domain][]byte{}}
	for _, d := range []Domain{DomainAddress, DomainName, DomainBody, DomainAuditChain, DomainAuditText, DomainSignIn, DomainAddressTail} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("parley blind index v1\x00" + d))
		domainKey := m.Sum(nil)
		ix.keys[d] = domainKey
		ix.pools[d] = &sync.Pool{New: func() any { return hmac.New(sha256.New, domainKey) }}
	}
	return ix, nil
}

func (ix *Indexer) sum(d Domain, value string, out []byte) []byte {
	p, ok := ix.pools[d]
	if !ok {
		panic("crypt: unknown blind index domain " + string(d))
	}
	h := p.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(value))
	out = h.Sum(out)
	p.Put(h)
	return out
}

// Exact returns the exact index of an already-normalised value (an E.164
// number, say): ExactSize bytes.
func (ix *Indexer) Exact(d Domain, value string) []byte {
	var buf [sha256.Size]byte
	return append([]byte(nil), ix.sum(d, value, buf[:0])[:ExactSize]...)
}

// MAC returns a fresh HMAC-SHA256 under domain d's key, for a caller that
// needs the whole sum of a value written in parts (the audit chain).
func (ix *Indexer) MAC(d Domain) hash.Hash {
	k, ok := ix.keys[d]
	if !ok {
		panic("crypt: unknown blind index domain " + string(d))
	}
	return hmac.New(sha256.New, k)
}

// Token returns the index of one normalised word (see textnorm.Words).
func (ix *Indexer) Token(d Domain, word string) int32 {
	var buf [sha256.Size]byte
	return int32(binary.BigEndian.Uint32(ix.sum(d, word, buf[:0])))
}

// Tail returns the tail index of a number (any text: only its digits
// count), and false when it has fewer than TailDigits digits.
func (ix *Indexer) Tail(number string) (int32, bool) {
	digits := strings.Map(func(r rune) rune {
		if r < '0' || r > '9' {
			return -1
		}
		return r
	}, textnorm.Digits(number))
	if len(digits) < TailDigits {
		return 0, false
	}
	var buf [sha256.Size]byte
	sum := ix.sum(DomainAddressTail, digits[len(digits)-TailDigits:], buf[:0])
	return int32(binary.BigEndian.Uint32(sum) >> (32 - TailBits)), true
}

// Tokens returns the distinct token indexes of the words of text.
func (ix *Indexer) Tokens(d Domain, text string) []int32 {
	words := textnorm.Words(text)
	out := make([]int32, 0, len(words))
	seen := make(map[int32]bool, len(words))
	for _, w := range words {
		t := ix.Token(d, w)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
