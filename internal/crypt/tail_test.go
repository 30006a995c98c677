package crypt_test

import (
	"bytes"
	"testing"

	"github.com/parley-chat/parley/internal/crypt"
)

// A number's tail index depends on its last four digits only, however the
// number is written, and is kept in TailBits bits.
func TestIndexer_TailOfTheLastDigits(t *testing.T) {
	ix, _ := crypt.NewIndexer(bytes.Repeat([]byte{7}, 32))
	a, ok := ix.Tail("+447700900117")
	if !ok || a < 0 || a >= 1<<crypt.TailBits {
		t.Fatalf("Tail = %d, %v", a, ok)
	}
	for _, same := range []string{"900117", "0117", "07700 900117", "+1 202 555 0117"} {
		if b, ok := ix.Tail(same); !ok || b != a {
			t.Errorf("%q: %d, want %d", same, b, a)
		}
	}
	if _, ok := ix.Tail("117"); ok {
		t.Error("three digits have a tail index")
	}
	distinct := map[int32]bool{}
	for _, n := range []string{"0000", "0001", "0002", "0003", "0004", "0005", "0006", "0007"} {
		v, _ := ix.Tail(n)
		distinct[v] = true
	}
	if len(distinct) < 6 {
		t.Errorf("eight tails fell in %d buckets", len(distinct))
	}
}
