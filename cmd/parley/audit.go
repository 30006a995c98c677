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
	a := group("audit", "Check the audit log", "verify, checkpoint")
	var from string
	verify := &cobra.Command{
		Use:   "verify [--from-checkpoint SEQ:MAC:UNKEYED]",
		Short: "Walk the audit log's keyed chain and name the first broken link; with a checkpoint, also prove nothing up to it changed or was cut",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return auditVerify(cmd.Context(), getenv, from, stdout, stderr)
		},
	}
	verify.Flags().StringVar(&from, "from-checkpoint", "", "a head printed by `parley audit checkpoint` and kept outside the database")
	a.AddCommand(verify, &cobra.Command{
		Use:   "checkpoint",
		Short: "Verify the chain and print its head (SEQ:MAC:UNKEYED) to keep outside the database, for `verify --from-checkpoint`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return auditCheckpoint(cmd.Context(), getenv, stdout, stderr)
		},
	})
	return a
}

func auditVerify(ctx context.Context, getenv func(string) string, from string, stdout, stderr io.Writer) error {
	var cp store.Checkpoint
	if from != "" {
		var err error
		if cp, err = store.ParseCheckpoint(from); err != nil {
			return usageError{models.ErrorMessage(err)}
		}
	}
	_, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	audit := store.NewAuditStore(db, c)
	var state store.ChainState
	if from != "" {
		state, err = audit.VerifyFrom(ctx, cp)
	} else {
		state, err = audit.Check(ctx)
	}
	if err := brokenChain(err, state.Entries); err != nil {
		return err
	}
	// The plain entries are said out loud: only the first keyed entry,
	// which links to them, holds them, and only a checkpoint holds a cut.
	keyed := "all keyed"
	if state.Unkeyed > 0 {
		keyed = fmt.Sprintf("the first %d unkeyed (plain SHA-256, written before the chain was keyed)", state.Unkeyed)
	}
	if from != "" {
		fmt.Fprintf(stdout, "audit log intact: %d entries, %s; entry %d still carries the checkpoint's MAC\n", state.Entries, keyed, cp.Seq)
		return nil
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries, %s\n", state.Entries, keyed)
	return nil
}

// auditCheckpoint prints the verified head of the chain.
func auditCheckpoint(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	_, db, c, err := openSealed(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	cp, err := store.NewAuditStore(db, c).Checkpoint(ctx)
	var broken *models.Error
	if errors.As(err, &broken) && broken.Code == models.EINTERNAL && broken.Message != "" {
		return fmt.Errorf("%s No checkpoint printed: a broken chain is not worth keeping", broken.Message)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, cp)
	return nil
}

// brokenChain words a verification's failure for the command line: the
// broken link and how many entries before it hold.
func brokenChain(err error, held int) error {
	var broken *models.Error
	if errors.As(err, &broken) && broken.Code == models.EINTERNAL && broken.Message != "" {
		return fmt.Errorf("%s (the %d entries before it hold)", broken.Message, held)
	}
	return err
}
