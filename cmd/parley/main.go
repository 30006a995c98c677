// Command parley is the one Parley binary: the server, the development
// environment, migrations and the admin tools.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr))
}
