// Package main is the command sam-ml-backend, a Label Studio ML backend
// that segments images with Segment Anything through ONNX Runtime.
// Configuration comes from the environment; see the README for every
// setting.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sam-ml-backend/sam-ml-backend/internal/app"
)

// version is set at build time with -ldflags "-X main.version=…".
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, buildVersion(), os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "sam-ml-backend:", err)
		os.Exit(1)
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "dev"
}
