// Package onnxrttest loads ONNX Runtime for tests, with the project's rule:
// the library comes from $ONNXRUNTIME_LIB; when that is unset (or the build
// has no cgo) the test is skipped with a message, unless SAM_REQUIRE_ORT=1,
// which scripts/test.sh and CI set, and then the test fails.
package onnxrttest

import (
	"errors"
	"os"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

func required() bool { return os.Getenv("SAM_REQUIRE_ORT") == "1" }

// LibPath returns $ONNXRUNTIME_LIB, or skips (or fails) the test.
func LibPath(tb testing.TB) string {
	tb.Helper()
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		if required() {
			tb.Fatal("ONNXRUNTIME_LIB is unset and SAM_REQUIRE_ORT=1")
		}
		tb.Skip("ONNXRUNTIME_LIB is unset; set it to libonnxruntime.so.1 (scripts/fetch-onnxruntime.sh prints the path), or run scripts/test.sh")
	}
	return lib
}

// Init loads ONNX Runtime and returns its version, or skips (or fails) the
// test.
func Init(tb testing.TB) string {
	tb.Helper()
	v, err := onnxrt.Init(LibPath(tb))
	if errors.Is(err, onnxrt.ErrUnavailable) && !required() {
		tb.Skipf("onnx runtime unavailable in this build: %v", err)
	}
	if err != nil {
		tb.Fatalf("init onnx runtime: %v", err)
	}
	return v
}

// NewSession loads ONNX Runtime as Init does and opens model with one
// thread per session, closed when the test ends. Nil inputs or outputs mean
// all of the model's.
func NewSession(tb testing.TB, model []byte, inputs, outputs []string) *onnxrt.Session {
	tb.Helper()
	Init(tb)
	s, err := onnxrt.NewSession(model, inputs, outputs, onnxrt.Options{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		tb.Fatalf("create session: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close session: %v", err)
		}
	})
	return s
}
