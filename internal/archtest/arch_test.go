package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/sam-ml-backend/sam-ml-backend/"

// pkg is one package directory's non-test files.
type pkg struct {
	dir        string // relative to the module root, e.g. internal/rle
	imports    map[string]bool
	hasDoc     bool
	importsCgo bool
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "node_modules", ".git", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			pkgs[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package ") || f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Command ") {
			p.hasDoc = true
		}
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			p.imports[path] = true
			if path == "C" {
				p.importsCgo = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if !p.hasDoc {
			t.Errorf("package %s has no \"// Package …\" (or \"// Command …\") doc comment", dir)
		}
	}
}

func TestNativeCodeIsFenced(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if dir == "internal/onnxrt" {
			continue
		}
		if p.importsCgo || p.imports["github.com/yalue/onnxruntime_go"] {
			t.Errorf("%s reaches native code; only internal/onnxrt may", dir)
		}
	}
}

// allowed lists, for each internal package, the internal packages it may
// import. Leaves import none. app and the command may import anything.
var allowed = map[string][]string{
	"internal/archtest":          {},
	"internal/config":            {},
	"internal/deploytest":        {},
	"internal/httpapi":           {"internal/labelstudio", "internal/logging"},
	"internal/logging":           {},
	"internal/imagefetch":        {},
	"internal/labelstudio":       {},
	"internal/lru":               {},
	"internal/lsdb":              {},
	"internal/credentials":       {"internal/labelstudio", "internal/lru", "internal/lsauth"},
	"internal/lsauth":            {},
	"internal/metrics":           {},
	"internal/onnxrt":            {},
	"internal/onnxrt/onnxrttest": {"internal/onnxrt"},
	"internal/orgauth":           {},
	"internal/predict":           {"internal/labelstudio", "internal/lru", "internal/rle", "internal/sam"},
	"internal/rle":               {},
	"internal/sam":               {"internal/onnxrt"},
	"internal/standin":           {},
	"cmd/gen-standins":           {"internal/standin"},
	"cmd/sam-ml-backend":         {"internal/app"},
}

func TestImportDirection(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if dir == "internal/app" {
			continue
		}
		want, ok := allowed[dir]
		if !ok {
			t.Errorf("package %s is not in archtest's allowed table: add it with the internal packages it may import", dir)
			continue
		}
		var bad []string
		for imp := range p.imports {
			internal, ok := strings.CutPrefix(imp, module)
			if ok && !slices.Contains(want, internal) {
				bad = append(bad, internal)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%s imports %v; it may import only %v", dir, bad, want)
		}
	}
}

func TestCommandStaysThin(t *testing.T) {
	b, err := os.ReadFile("../../cmd/sam-ml-backend/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 60 {
		t.Errorf("cmd/sam-ml-backend/main.go has %d lines; keep wiring in internal/app", n)
	}
}
