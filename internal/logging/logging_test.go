package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/logging"
)

func TestJSONLinesCarryTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "INFO", logging.FormatJSON).With("component", "test")
	ctx := logging.WithRequestID(context.Background(), "abc123")
	log.InfoContext(logging.With(ctx, slog.Int64("auth_organization", 3)), "prediction", "task", 7)
	log.Info("no request")
	log.DebugContext(ctx, "hidden at INFO")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["request_id"] != "abc123" || first["msg"] != "prediction" || first["task"] != 7.0 || first["component"] != "test" || first["auth_organization"] != 3.0 {
		t.Errorf("first line: %v", first)
	}
	if _, ok := second["request_id"]; ok {
		t.Errorf("a line without a request has a request_id: %v", second)
	}
}

func TestTextAndLevels(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "WARNING", "text")
	ctx := logging.WithRequestID(context.Background(), "r-1")
	log.InfoContext(ctx, "dropped")
	log.WarnContext(ctx, "kept")
	if got := buf.String(); strings.Contains(got, "dropped") || !strings.Contains(got, "msg=kept request_id=r-1") {
		t.Errorf("log: %q", got)
	}
	for level, want := range map[string]slog.Level{"DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo, "WARNING": slog.LevelWarn, "ERROR": slog.LevelError} {
		if got := logging.Level(level); got != want {
			t.Errorf("Level(%q) = %v, want %v", level, got, want)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	a, b := logging.NewRequestID(), logging.NewRequestID()
	if a == b || len(a) != 16 || !logging.ValidRequestID(a) {
		t.Errorf("NewRequestID gave %q and %q", a, b)
	}
	for id, want := range map[string]bool{
		"abc-DEF_1.2":           true,
		"":                      false,
		strings.Repeat("a", 65): false,
		"a b":                   false,
		"a\nlevel=ERROR":        false,
		`"quoted"`:              false,
	} {
		if got := logging.ValidRequestID(id); got != want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}
