package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

func cmdKeys(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		return usageError{"keys needs: generate [encryption|blind-index|session]"}
	}
	kind := "encryption"
	if len(args) > 1 {
		kind = args[1]
	}
	switch kind {
	case "encryption":
		fmt.Fprintln(stdout, newEncryptionKey())
	case "blind-index":
		fmt.Fprintln(stdout, newSecret())
	case "session":
		fmt.Fprintln(stdout, newSessionKeyPair())
	default:
		return usageError{fmt.Sprintf("unknown key kind %q", kind)}
	}
	return nil
}

// newSecret returns base64 of 32 random bytes.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.StdEncoding.EncodeToString(b)
}

// newEncryptionKey returns a key-ring entry, id:base64, whose id carries
// the date it was made, for telling keys apart when rotating.
func newEncryptionKey() string {
	suffix := make([]byte, 2)
	_, _ = rand.Read(suffix)
	return fmt.Sprintf("k%s-%s:%s", time.Now().UTC().Format("20060102"), hex.EncodeToString(suffix), newSecret())
}

func newSessionKeyPair() string { return newSecret() + ":" + newSecret() }
