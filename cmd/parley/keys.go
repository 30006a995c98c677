package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// cmdKeys rotates the keys (action "rotate") or reports on them ("status").
func cmdKeys(ctx context.Context, action string, getenv func(string) string, stdout, stderr io.Writer) error {
	_, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	rot := store.NewRotator(db, c.Ring)
	if action == "rotate" {
		audit := store.NewAuditStore(db, c)
		event := func(action string) error {
			return audit.Record(ctx, &models.AuditEvent{Action: action, SubjectType: "key", SubjectID: c.Ring.ActiveKeyID(),
				Details: map[string]any{"via": "cli"}})
		}
		if err := event("keys.rotation_started"); err != nil {
			return err
		}
		if err := keysRotate(ctx, rot, c.Ring.ActiveKeyID(), stderr); err != nil {
			return err
		}
		return event("keys.rotated")
	}
	return keysStatus(ctx, rot, stdout)
}

// keysGenerate prints a new key of kind.
func keysGenerate(kind string, stdout io.Writer) error {
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

// keysRotate re-encrypts everything under the active key, showing a
// progress bar. Killed, it resumes where it stopped when run again.
func keysRotate(ctx context.Context, rot *store.Rotator, active string, stderr io.Writer) error {
	var bar *progressbar.ProgressBar
	err := rot.Run(ctx, func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription("re-encrypting under "+active),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
			)
		}
		bar.ChangeMax64(total)
		_ = bar.Set64(done)
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fmt.Errorf("key rotation stopped (run `parley keys rotate` again to resume): %w", err)
	}
	fmt.Fprintf(stderr, "every encrypted value is now under key %s; older keys can leave PARLEY_ENCRYPTION_KEYS\n", active)
	return nil
}

// keysStatus prints how many values each key seals, per column, and the
// latest rotation.
func keysStatus(ctx context.Context, rot *store.Rotator, stdout io.Writer) error {
	counts, err := rot.KeyCounts(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COLUMN\tKEY\tVALUES")
	for _, c := range counts {
		fmt.Fprintf(w, "%s.%s\t%s\t%d\n", c.Table, c.Name, c.KeyID, c.Count)
	}
	rotations, err := rot.Rotations(ctx)
	if err != nil {
		return err
	}
	if len(rotations) > 0 {
		fmt.Fprintln(w, "\nCOLUMN\tROTATING TO\tPROGRESS\tSTATE")
		for _, r := range rotations {
			state := "running or stopped (run `parley keys rotate` to resume)"
			if r.FinishedAt != nil {
				state = "finished " + r.FinishedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s.%s\t%s\t%d/%d\t%s\n", r.Table, r.Name, r.TargetKey, r.Rewritten, r.Total, state)
		}
	}
	return w.Flush()
}

// newCrypto builds the key ring, blind indexer and phone normaliser from
// the configuration.
func newCrypto(cfg *config.Config, log *slog.Logger) (store.Crypto, error) {
	keys := make([]crypt.Key, len(cfg.EncryptionKeys))
	for i, k := range cfg.EncryptionKeys {
		keys[i] = crypt.Key{ID: k.ID, Secret: k.Secret}
	}
	ring, err := crypt.NewKeyRing(keys, log)
	if err != nil {
		return store.Crypto{}, err
	}
	ix, err := crypt.NewIndexer(cfg.BlindIndexKey)
	if err != nil {
		return store.Crypto{}, err
	}
	return store.Crypto{Ring: ring, Index: ix, Phones: phone.New(cfg.DefaultRegion)}, nil
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
