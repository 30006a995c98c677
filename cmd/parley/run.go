package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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

const usage = `Usage: parley <command> [arguments]

Commands:
  serve                  run the server (needs DATABASE_URL and the keys; see .env.example)
  dev                    run the server for development: embedded PostgreSQL in ./.data,
                         generated development keys, migrations applied
  migrate up|down|status apply, roll back one, or list the database migrations
  keys generate [encryption|blind-index|session]
                         print a new key for PARLEY_ENCRYPTION_KEYS, PARLEY_BLIND_INDEX_KEY
                         or PARLEY_SESSION_KEYS
  keys rotate            re-encrypt every stored value under the active (first) key of
                         PARLEY_ENCRYPTION_KEYS; resumable, with progress
  keys status            how many stored values each key seals, and the last rotation
  flows validate [dir]   check the flow files (PARLEY_FLOWS_DIR, or the built-in sample)
  flows simulate FLOW [--script FILE]
                         talk to a flow in the terminal, through the real engine
  version                print the version
`

// usageError is a bad command line; run prints it with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program: main only calls it. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := dispatch(ctx, args[1:], getenv, stdout, stderr)
	var cfgErr *config.Error
	var useErr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, cfgErr.Error())
		return exitUsage
	case errors.As(err, &useErr):
		fmt.Fprintf(stderr, "parley: %s\n\n%s", useErr.msg, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "parley: %v\n", err)
		return exitFailure
	}
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return cmdServe(ctx, getenv, stdout)
	case "dev":
		return cmdDev(ctx, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout)
	case "keys":
		return cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "flows":
		return cmdFlows(rest, getenv, stdout)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}
