package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func auditCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	a := group("audit", "Check the audit log", "verify")
	a.AddCommand(&cobra.Command{
		Use:   "verify",
		Short: "Walk the audit log's hash chain and name the first broken link",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return auditVerify(cmd.Context(), getenv, stdout, stderr) },
	})
	return a
}

func auditVerify(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	_, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := store.NewAuditStore(db, c).Verify(ctx)
	var broken *models.Error
	if errors.As(err, &broken) && broken.Code == models.EINTERNAL {
		return fmt.Errorf("%s (the %d entries before it hold)", broken.Message, n)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries\n", n)
	return nil
}
