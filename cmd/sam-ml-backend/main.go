// Package main is the command sam-ml-backend, a Label Studio ML backend
// that segments images with Segment Anything through ONNX Runtime.
// Configuration comes from the environment; see the README for every
// setting. "sam-ml-backend org-credentials <org>" prints an organization's
// own basic-auth credentials.
package main

import (
	"context"
	"errors"
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
	if len(os.Args) > 1 {
		if err := app.Command(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
			if errors.Is(err, app.ErrUsage) {
				os.Exit(2)
			}
			fmt.Fprintln(os.Stderr, "sam-ml-backend:", err)
			os.Exit(1)
		}
		return
	}
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
