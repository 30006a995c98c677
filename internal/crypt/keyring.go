// Package crypt encrypts Parley's personal data field by field and makes it
// searchable through keyed blind indexes.
//
// Each value is sealed with AES-256-GCM under the active key of a key ring,
// with a random nonce. The ciphertext names its key, so values sealed under
// older keys still open while rotation moves them to the active key. The
// record's identity (table, column, row id) is bound as associated data: a
// ciphertext copied to another row or column does not open.
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/parley-chat/parley/models"
)

// Key is one entry of the key ring: an id and 32 secret bytes.
type Key struct {
	ID     string
	Secret []byte
}

// Ref is the identity of one encrypted value: where it is stored.
type Ref struct {
	Table  string
	Column string
	ID     int64
}

func (r Ref) String() string { return r.Table + "." + r.Column + "#" + strconv.FormatInt(r.ID, 10) }

// Ciphertext layout: version (1 byte) | key id length (1) | key id | nonce
// (12) | sealed data and tag. The header is authenticated with the record's
// identity.
const (
	version   = 1
	nonceSize = 12
	maxKeyID  = 32
)

// Decryption failures. They are wrapped in an EINTERNAL *models.Error.
var (
	ErrUnknownKey = errors.New("ciphertext sealed under a key that is not in the ring")
	ErrMalformed  = errors.New("ciphertext is truncated or malformed")
	ErrTampered   = errors.New("ciphertext failed authentication (tampered, or moved from another record)")
)

type sealer struct {
	id   string
	aead cipher.AEAD
}

// KeyRing seals under its active (first) key and opens under any of its
// keys. It is safe for concurrent use.
type KeyRing struct {
	active *sealer
	byID   map[string]*sealer
	log    *slog.Logger
}

// NewKeyRing returns a ring whose first key is active. Failures to decrypt
// are logged to log (nil discards) with the key id and record, never data.
func NewKeyRing(keys []Key, log *slog.Logger) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("crypt: key ring needs at least one key")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &KeyRing{byID: map[string]*sealer{}, log: log}
	for _, k := range keys {
		if len(k.ID) == 0 || len(k.ID) > maxKeyID {
			return nil, fmt.Errorf("crypt: key id %q must have 1 to %d bytes", k.ID, maxKeyID)
		}
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("crypt: key %q must have 32 bytes, has %d", k.ID, len(k.Secret))
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("crypt: key id %q appears twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s := &sealer{id: k.ID, aead: aead}
		r.byID[k.ID] = s
		if r.active == nil {
			r.active = s
		}
	}
	return r, nil
}

// ActiveKeyID is the id of the key new values are sealed under.
func (r *KeyRing) ActiveKeyID() string { return r.active.id }

// HasKey reports whether the ring holds the key with this id.
func (r *KeyRing) HasKey(id string) bool { _, ok := r.byID[id]; return ok }

// Encrypt seals plaintext for the record ref under the active key.
func (r *KeyRing) Encrypt(plaintext []byte, ref Ref) []byte {
	s := r.active
	hdr := 2 + len(s.id)
	out := make([]byte, hdr+nonceSize, hdr+nonceSize+len(plaintext)+s.aead.Overhead())
	out[0], out[1] = version, byte(len(s.id))
	copy(out[2:], s.id)
	nonce := out[hdr : hdr+nonceSize]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails on supported platforms
	return s.aead.Seal(out, nonce, plaintext, associatedData(out[:hdr], ref))
}

// EncryptString is Encrypt for text.
func (r *KeyRing) EncryptString(plaintext string, ref Ref) []byte {
	return r.Encrypt([]byte(plaintext), ref)
}

// Decrypt opens a value sealed for ref. Any failure is an EINTERNAL
// *models.Error wrapping ErrUnknownKey, ErrMalformed or ErrTampered, and is
// logged with the key id and the record, never the data.
func (r *KeyRing) Decrypt(ciphertext []byte, ref Ref) ([]byte, error) {
	keyID, err := KeyID(ciphertext)
	if err != nil {
		return nil, r.fail(err, "", ref)
	}
	s, ok := r.byID[keyID]
	if !ok {
		return nil, r.fail(ErrUnknownKey, keyID, ref)
	}
	hdr := 2 + len(keyID)
	if len(ciphertext) < hdr+nonceSize+s.aead.Overhead() {
		return nil, r.fail(ErrMalformed, keyID, ref)
	}
	nonce := ciphertext[hdr : hdr+nonceSize]
	plain, err := s.aead.Open(nil, nonce, ciphertext[hdr+nonceSize:], associatedData(ciphertext[:hdr], ref))
	if err != nil {
		return nil, r.fail(ErrTampered, keyID, ref)
	}
	return plain, nil
}

// DecryptString is Decrypt for text.
func (r *KeyRing) DecryptString(ciphertext []byte, ref Ref) (string, error) {
	b, err := r.Decrypt(ciphertext, ref)
	return string(b), err
}

func (r *KeyRing) fail(cause error, keyID string, ref Ref) error {
	r.log.Error("decrypt failed", slog.String("key_id", keyID), slog.String("record", ref.String()), slog.String("reason", cause.Error()))
	return models.Wrap(fmt.Errorf("decrypt %s (key %q): %w", ref, keyID, cause), models.EINTERNAL, "Stored data could not be decrypted.")
}

// KeyID returns the id of the key a ciphertext was sealed under.
func KeyID(ciphertext []byte) (string, error) {
	if len(ciphertext) < 2 || ciphertext[0] != version {
		return "", ErrMalformed
	}
	n := int(ciphertext[1])
	if n == 0 || n > maxKeyID || len(ciphertext) < 2+n {
		return "", ErrMalformed
	}
	return string(ciphertext[2 : 2+n]), nil
}

// associatedData binds the header (version and key id) and the record's
// identity. Lengths prefix each part so no two identities collide.
func associatedData(header []byte, ref Ref) []byte {
	ad := make([]byte, 0, 16+len(header)+len(ref.Table)+len(ref.Column)+20)
	ad = append(ad, "parley.v1"...)
	for _, part := range [][]byte{header, []byte(ref.Table), []byte(ref.Column)} {
		ad = strconv.AppendInt(ad, int64(len(part)), 10)
		ad = append(ad, ':')
		ad = append(ad, part...)
	}
	return strconv.AppendInt(append(ad, '#'), ref.ID, 10)
}
