package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// contactsCommand answers a person's rights over their data: a copy of
// everything (export) and its removal (erase). Both are audited.
func contactsCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	c := group("contacts", "Export or erase everything Parley holds of one person", "export, erase")
	var phone string
	var yes bool
	export := &cobra.Command{
		Use:   "export --phone NUMBER",
		Short: "Write everything held of the person with this number (every channel), decrypted, as JSON, for a subject-access request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withContacts(cmd.Context(), getenv, stderr, phone, func(ctx context.Context, contacts *store.ContactStore, audit *store.AuditStore, found []*models.Contact) error {
				var out []*store.ContactExport
				for _, ct := range found {
					exp, err := contacts.Export(ctx, ct.ID)
					if err != nil {
						return err
					}
					if err := audit.Record(ctx, &models.AuditEvent{Action: "contact.export", SubjectType: "contact",
						SubjectID: strconv.FormatInt(ct.ID, 10), Details: map[string]any{"via": "cli"}}); err != nil {
						return err
					}
					out = append(out, exp)
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			})
		},
	}
	export.Flags().StringVar(&phone, "phone", "", "the person's number, in any format (without a country code, read in PARLEY_DEFAULT_REGION)")
	erase := &cobra.Command{
		Use:   "erase --phone NUMBER --yes",
		Short: "Remove everything held of the person with this number (every channel) for good; an audit entry keeps that it happened",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return usageError{"erasing cannot be undone: add --yes"}
			}
			return withContacts(cmd.Context(), getenv, stderr, phone, func(ctx context.Context, contacts *store.ContactStore, audit *store.AuditStore, found []*models.Contact) error {
				for _, ct := range found {
					n, err := contacts.Erase(ctx, ct.ID, nil, audit)
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "erased contact %d (%s): %d messages, %d attachments, %d conversations, %d queued jobs\n",
						ct.ID, ct.Channel, n.Messages, n.Attachments, n.Conversations, n.Jobs)
				}
				return nil
			})
		},
	}
	erase.Flags().StringVar(&phone, "phone", "", "the person's number, in any format (without a country code, read in PARLEY_DEFAULT_REGION)")
	erase.Flags().BoolVar(&yes, "yes", false, "confirm: the erasure cannot be undone")
	c.AddCommand(export, erase)
	return c
}

// withContacts finds the contacts with the number typed and runs fn on them.
func withContacts(ctx context.Context, getenv func(string) string, stderr io.Writer, phone string,
	fn func(context.Context, *store.ContactStore, *store.AuditStore, []*models.Contact) error) error {
	if phone == "" {
		return usageError{"--phone is required"}
	}
	cfg, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	contacts := store.NewContactStore(db, c)
	found, err := contacts.FindByPhone(ctx, phone)
	if err != nil {
		switch {
		case models.ErrorCode(err) != models.EINVALID:
			return err
		case cfg.DefaultRegion == "" && !strings.HasPrefix(strings.TrimSpace(phone), "+"):
			return usageError{"--phone has no country code, and PARLEY_DEFAULT_REGION is unset: give the number with its country code (+44 7700 900123), or set PARLEY_DEFAULT_REGION (e.g. GB)"}
		}
		return usageError{"--phone is not a phone number"}
	}
	if len(found) == 0 {
		return errors.New("no contact has that number")
	}
	return fn(ctx, contacts, store.NewAuditStore(db, c), found)
}
