package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/parley-chat/parley/internal/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // something went wrong while running
	exitUsage   = 2 // bad command line or configuration: fix it and run again
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// versionString is what `parley version` and `parley --version` print:
// the version given at build time, else the module version or commit Go
// recorded in the binary, else "dev".
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return version
	}
	return version + " (" + rev + dirty + ")"
}

// stdin is where commands read what they ask for (a password); tests
// replace it.
var stdin io.Reader = os.Stdin

// usageError is a bad command line; run prints it with a hint to --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program: main only calls it. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, started := commands(getenv, stdout, stderr)
	root.SetArgs(args[1:])
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	var cfgErr *config.Error
	var useErr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, cfgErr.Error())
		return exitUsage
	case errors.As(err, &useErr) || !*started:
		// Refused by the command line itself: an unknown command or flag,
		// a missing or extra argument.
		fmt.Fprintf(stderr, "parley: %s\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	default:
		fmt.Fprintf(stderr, "parley: %v\n", err)
		return exitFailure
	}
}

// commands is the command tree. started is set once a command's own code
// runs: an error before that is the command line's.
func commands(getenv func(string) string, stdout, stderr io.Writer) (*cobra.Command, *bool) {
	started := new(bool)
	root := &cobra.Command{
		Use:           "parley",
		Short:         "Parley runs conversations with people over WhatsApp and SMS.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{"no command given"}
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.Version = versionString() // cobra adds --version
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })

	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Run the server (needs DATABASE_URL and the keys; see .env.example)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmdServe(cmd.Context(), getenv, stdout) },
	}, &cobra.Command{
		Use:   "dev",
		Short: "Run the server for development: embedded PostgreSQL in ./.data, development keys, migrations applied",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmdDev(cmd.Context(), getenv, stdout, stderr) },
	}, migrateCommand(getenv, stdout), keysCommand(getenv, stdout, stderr), flowsCommand(getenv, stdout),
		usersCommand(getenv, stdin, stdout, stderr), auditCommand(getenv, stdout, stderr), contactsCommand(getenv, stdout, stderr), templatesCommand(getenv, stdout, stderr), &cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, versionString()) },
		})
	markStart(root, started)
	return root, started
}

// markStart has every command set started as its own code begins, after
// cobra has checked the arguments and flags (required flags included).
func markStart(c *cobra.Command, started *bool) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			*started = true
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markStart(sub, started)
	}
}

// group is a command that only holds others: run bare, it names them.
func group(use, short, needs string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return usageError{use + " needs one of: " + needs} },
	}
}

func migrateCommand(getenv func(string) string, stdout io.Writer) *cobra.Command {
	m := group("migrate", "Apply, roll back one, or list the database migrations", "up, down, status")
	for _, sub := range []struct{ action, short string }{
		{"up", "Apply every pending migration"},
		{"down", "Roll back the last migration"},
		{"status", "List the migrations and whether each is applied"},
	} {
		m.AddCommand(&cobra.Command{
			Use: sub.action, Short: sub.short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return cmdMigrate(cmd.Context(), sub.action, getenv, stdout)
			},
		})
	}
	return m
}

func keysCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	k := group("keys", "Make, rotate and inspect the encryption keys", "generate, rotate, status")
	k.AddCommand(&cobra.Command{
		Use:       "generate [encryption|blind-index|session]",
		Short:     "Print a new key for PARLEY_ENCRYPTION_KEYS (the default), PARLEY_BLIND_INDEX_KEY or PARLEY_SESSION_KEYS",
		Args:      cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"encryption", "blind-index", "session"},
		RunE: func(_ *cobra.Command, args []string) error {
			kind := "encryption"
			if len(args) == 1 {
				kind = args[0]
			}
			return keysGenerate(kind, stdout)
		},
	}, &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every stored value under the active (first) key; resumable, with progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdKeys(cmd.Context(), "rotate", getenv, stdout, stderr)
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "How many stored values each key seals, per column, and the last rotation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdKeys(cmd.Context(), "status", getenv, stdout, stderr)
		},
	})
	return k
}

func flowsCommand(getenv func(string) string, stdout io.Writer) *cobra.Command {
	f := group("flows", "Check flow files and talk to a flow in the terminal", "validate, simulate")
	var script string
	simulate := &cobra.Command{
		Use:   "simulate FLOW",
		Short: "Talk to a flow (a file, or the id of a flow in PARLEY_FLOWS_DIR or built in) through the real engine",
		Args:  cobra.ExactArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return flowsSimulate(args[0], script, getenv, stdout) },
	}
	simulate.Flags().StringVar(&script, "script", "", "read the contact's lines from `FILE` instead of the terminal")
	f.AddCommand(&cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check the flow files of DIR (PARLEY_FLOWS_DIR, or the built-in samples), naming file, node and problem; with DATABASE_URL, the templates they name against the registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := getenv("PARLEY_FLOWS_DIR")
			if len(args) == 1 {
				dir = args[0]
			}
			return flowsValidate(cmd.Context(), dir, getenv("DATABASE_URL"), stdout)
		},
	}, simulate)
	return f
}
