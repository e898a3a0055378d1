package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

func TestRunWritesModels(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	var stdout bytes.Buffer
	if err := run([]string{"-dir", dir}, &stdout); err != nil {
		t.Fatalf("run: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := standin.Build()
	if len(entries) != len(want) {
		t.Errorf("wrote %d files, want %d", len(entries), len(want))
	}
	for name, model := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("read %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, model) {
			t.Errorf("%s: wrote %d bytes that differ from the generator's %d", name, len(got), len(model))
		}
	}
	if got := bytes.Count(stdout.Bytes(), []byte("\n")); got != len(want) {
		t.Errorf("printed %d lines, want %d", got, len(want))
	}
}

func TestRunRejectsArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-out", "x"}},
		{"positional argument", []string{"-dir", t.TempDir(), "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			if err := run(tt.args, &stdout); err == nil {
				t.Errorf("run(%q) succeeded, want an error", tt.args)
			}
		})
	}
}
