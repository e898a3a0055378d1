// Package main is the command gen-standins, which writes the stand-in SAM
// models of package standin to a directory, internal/standin/models by
// default. Run it from the module root after changing the models:
//
//	go run ./cmd/gen-standins
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen-standins:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen-standins", flag.ContinueOnError)
	dir := fs.String("dir", filepath.Join("internal", "standin", "models"), "directory to write the models to")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("parse arguments: unexpected %q", fs.Arg(0))
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("create model directory: %w", err)
	}
	models := standin.Build()
	for _, name := range slices.Sorted(maps.Keys(models)) {
		path := filepath.Join(*dir, name)
		if err := os.WriteFile(path, models[name], 0o644); err != nil {
			return fmt.Errorf("write model: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", path, len(models[name]))
	}
	return nil
}
