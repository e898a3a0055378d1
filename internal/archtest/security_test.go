package archtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityTableNamesRealTests keeps the README's threat table true:
// every row names at least one test or fuzz target, and each one named
// exists.
func TestSecurityTableNamesRealTests(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Security\n")
	if !ok {
		t.Fatal("README.md has no ## Security section")
	}
	section, _, _ = strings.Cut(section, "\n## ")

	defined := map[string]bool{}
	funcRE := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcRE.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	nameRE := regexp.MustCompile("`((?:Test|Fuzz)\\w+)`")
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) != 3 || strings.HasPrefix(line, "| threat") || strings.HasPrefix(line, "|---") {
			continue
		}
		rows++
		names := nameRE.FindAllStringSubmatch(cells[2], -1)
		if len(names) == 0 {
			t.Errorf("security row %q names no test", cells[0])
		}
		for _, n := range names {
			if !defined[n[1]] {
				t.Errorf("security row %q names %s, which no _test.go file defines", cells[0], n[1])
			}
		}
	}
	if rows < 10 {
		t.Errorf("found %d rows in the security table; the parser is likely wrong", rows)
	}
}
