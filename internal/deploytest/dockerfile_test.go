package deploytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, COPY, RUN, …
	args string // the rest of the instruction
	line int    // where it starts
}

// stage is one FROM and the instructions after it.
type stage struct {
	name string // the AS name; "" when unnamed
	base string // the image it starts from
	ins  []instruction
}

// parseDockerfile splits a Dockerfile into stages, the way BuildKit reads
// it with the default escape character: comment lines are dropped (also
// inside a continuation), and a line ending in a backslash continues.
func parseDockerfile(r io.Reader) ([]*stage, error) {
	var (
		stages []*stage
		cur    strings.Builder
		start  int
		n      int
	)
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := &stage{}
			switch {
			case len(f) == 1:
				st.base = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.base, st.name = f[0], f[2]
			default:
				return fmt.Errorf("line %d: cannot read FROM %s", start, in.args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil // a global ARG before the first FROM
			}
			return fmt.Errorf("line %d: %s before FROM", start, in.cmd)
		}
		st := stages[len(stages)-1]
		st.ins = append(st.ins, in)
		return nil
	}
	sc := bufio.NewScanner(r)
	continuing := false
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || continuing && trimmed == "" {
			continue
		}
		if !continuing {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body)
			cur.WriteByte(' ')
			continuing = true
			continue
		}
		cur.WriteString(line)
		continuing = false
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if continuing {
		return nil, errors.New("the last instruction ends in a backslash")
	}
	if len(stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return stages, nil
}

// copyArgs is a COPY or ADD.
type copyArgs struct {
	from string // the --from stage or image; "" for the build context
	srcs []string
	dest string
}

func parseCopy(args string) (copyArgs, error) {
	var c copyArgs
	rest := strings.TrimSpace(args)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		if v, ok := strings.CutPrefix(flag, "--from="); ok {
			c.from = v
		}
		rest = strings.TrimSpace(after)
	}
	var words []string
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &words); err != nil {
			return c, fmt.Errorf("cannot read the JSON form %s: %w", rest, err)
		}
	} else {
		words = strings.Fields(rest)
	}
	if len(words) < 2 {
		return c, fmt.Errorf("want sources and a destination in %q", args)
	}
	c.srcs, c.dest = words[:len(words)-1], words[len(words)-1]
	return c, nil
}

// parseEnv reads ENV's key=value pairs (values may be double-quoted), or
// the legacy "ENV key value".
func parseEnv(args string) (map[string]string, error) {
	env := map[string]string{}
	var words []string
	var cur strings.Builder
	quoted := false
	for _, r := range args {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted && (r == ' ' || r == '\t'):
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quote in ENV %s", args)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	if len(words) > 0 && !strings.Contains(words[0], "=") {
		env[words[0]] = strings.Join(words[1:], " ")
		return env, nil
	}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("ENV %s: %q has no =", args, w)
		}
		env[k] = v
	}
	return env, nil
}

// imageEnv returns the environment the final stage sets.
func imageEnv(t *testing.T, st *stage) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range st.ins {
		if in.cmd != "ENV" {
			continue
		}
		kv, err := parseEnv(in.args)
		if err != nil {
			t.Fatalf("Dockerfile line %d: %v", in.line, err)
		}
		for k, v := range kv {
			env[k] = v
		}
	}
	return env
}

// loadDockerfile parses the repository's Dockerfile.
func loadDockerfile(t *testing.T) []*stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages, err := parseDockerfile(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	return stages
}

// finalStage returns the Dockerfile's last stage, the image.
func finalStage(t *testing.T) *stage {
	t.Helper()
	stages := loadDockerfile(t)
	return stages[len(stages)-1]
}

// imageUser returns the final stage's USER.
func imageUser(t *testing.T, stages []*stage) (uid, gid int64) {
	t.Helper()
	final := stages[len(stages)-1]
	user := ""
	for _, in := range final.ins {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if user == "" {
		t.Fatal("the Dockerfile's final stage sets no USER: the image would run as root")
	}
	uid, gid, err := parseUser(user)
	if err != nil {
		t.Fatalf("Dockerfile USER: %v", err)
	}
	if uid == 0 || gid == 0 {
		t.Fatalf("Dockerfile USER %s is root", user)
	}
	return uid, gid
}

// debianRelease returns the Debian release an image is built on, from its
// tag ("golang:1.26-bookworm", "gcr.io/distroless/cc-debian12"), or "".
func debianRelease(image string) string {
	for codename, release := range map[string]string{"bullseye": "11", "bookworm": "12", "trixie": "13"} {
		if strings.Contains(image, codename) {
			return release
		}
	}
	if m := regexp.MustCompile(`debian(\d+)`).FindStringSubmatch(image); m != nil {
		return m[1]
	}
	return ""
}

// dockerignore is a parsed .dockerignore, matched the way BuildKit's
// patternmatcher does: the last pattern that matches a path or one of its
// parent folders decides, and "!" lets a path back in.
type dockerignore []ignorePattern

type ignorePattern struct {
	segs    []string
	exclude bool // a "!" pattern
}

func parseDockerignore(r io.Reader) (dockerignore, error) {
	var d dockerignore
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		var ex bool
		if p, ex = strings.CutPrefix(p, "!"); ex {
			p = strings.TrimSpace(p)
		}
		p = strings.TrimPrefix(path.Clean(p), "/")
		if p == "" || p == "." {
			continue
		}
		for _, seg := range strings.Split(p, "/") {
			if _, err := path.Match(seg, ""); err != nil && seg != "**" {
				return nil, fmt.Errorf("bad pattern %q: %w", p, err)
			}
		}
		d = append(d, ignorePattern{segs: strings.Split(p, "/"), exclude: ex})
	}
	return d, sc.Err()
}

// ignored reports whether the context path rel (slash-separated, relative
// to the context root) is left out of the build context.
func (d dockerignore) ignored(rel string) bool {
	segs := strings.Split(path.Clean(rel), "/")
	matched := false
	for _, p := range d {
		if p.exclude != matched {
			continue // cannot change the outcome
		}
		match := false
		for i := len(segs); i >= 1 && !match; i-- {
			match = matchSegs(p.segs, segs[:i])
		}
		if match {
			matched = !p.exclude
		}
	}
	return matched
}

// matchSegs matches path segments against pattern segments, where "**"
// stands for any number of segments.
func matchSegs(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if matchSegs(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, _ := path.Match(pat[0], segs[0])
	return ok && matchSegs(pat[1:], segs[1:])
}

func TestDockerignoreMatching(t *testing.T) {
	d, err := parseDockerignore(strings.NewReader("# comment\n*\n!go.mod\n!internal\n**/testdata\n**/*_test.go\n!internal/x/testdata/keep\n/bin\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{"go.mod", false},
		{"go.sum", true},
		{"README.md", true},
		{"internal/rle/rle.go", false},
		{"internal/rle/rle_test.go", true},
		{"internal/rle/testdata/vectors.json", true},
		{"internal/x/testdata/keep/a.json", false},
		{"testdata/a", true},
		{"bin/sam-ml-backend", true},
		{"internal", false},
	}
	for _, tt := range tests {
		if got := d.ignored(tt.path); got != tt.want {
			t.Errorf("ignored(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestDockerfileParsing(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG X=1\nFROM a:1 AS one\nRUN echo \\\n  # a comment\n  two\nFROM --platform=linux/amd64 b:2\nCOPY --from=one --chown=1:1 [\"/x y\", \"/z\"]\nENV A=1 \\\n\tB=\"two words\"\nENV C three four\n"
	stages, err := parseDockerfile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].name != "one" || stages[0].base != "a:1" || stages[1].base != "b:2" {
		t.Fatalf("stages = %+v", stages)
	}
	if got := strings.Join(strings.Fields(stages[0].ins[0].args), " "); got != "echo two" {
		t.Errorf("RUN args = %q, want %q (the comment line dropped)", got, "echo two")
	}
	c, err := parseCopy(stages[1].ins[0].args)
	if err != nil {
		t.Fatal(err)
	}
	if c.from != "one" || !slices.Equal(c.srcs, []string{"/x y"}) || c.dest != "/z" {
		t.Errorf("COPY = %+v", c)
	}
	env := imageEnv(t, stages[1])
	if env["A"] != "1" || env["B"] != "two words" || env["C"] != "three four" {
		t.Errorf("ENV = %v", env)
	}
}

// buildFiles returns every file, relative to the module root, that
// `go build ./cmd/sam-ml-backend` reads for linux/amd64 with cgo, as the
// Dockerfile builds it: go.mod, go.sum and the module's own Go, cgo and
// embedded files.
func buildFiles(t *testing.T) []string {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,Module,GoFiles,CgoFiles,CFiles,HFiles,EmbedFiles", "./cmd/sam-ml-backend")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			Dir    string
			Module *struct{ Main bool }
			GoFiles, CgoFiles, CFiles, HFiles,
			EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.EmbedFiles} {
			for _, f := range list {
				rel, err := filepath.Rel(abs, filepath.Join(p.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, filepath.ToSlash(rel))
			}
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found only %v", files)
	}
	return files
}

// stageByName finds a stage by its AS name.
func stageByName(stages []*stage, name string) *stage {
	for _, st := range stages {
		if st.name == name {
			return st
		}
	}
	return nil
}

// placed is a file or folder of the build context and where a COPY puts it.
type placed struct{ src, dest string }

// image is the parsed Dockerfile with what its stages copy from the
// context.
type image struct {
	stages []*stage
	ignore dockerignore
	copied map[*stage][]placed
	build  *stage      // the stage that runs go build
	run    instruction // its go build
}

// loadImage parses the Dockerfile and .dockerignore, and checks that every
// path copied from the build context exists and gets past .dockerignore.
func loadImage(t *testing.T) *image {
	t.Helper()
	img := &image{stages: loadDockerfile(t), copied: map[*stage][]placed{}}
	ignoreFile, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer ignoreFile.Close()
	if img.ignore, err = parseDockerignore(ignoreFile); err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, st := range img.stages {
		workdir := "/"
		for _, in := range st.ins {
			switch in.cmd {
			case "WORKDIR":
				workdir = path.Join(workdir, in.args)
			case "RUN":
				if strings.Contains(in.args, "go build") {
					img.build, img.run = st, in
				}
			case "ADD", "COPY":
				c, err := parseCopy(in.args)
				if err != nil {
					t.Errorf("Dockerfile line %d: %v", in.line, err)
					continue
				}
				if c.from != "" {
					continue
				}
				dest := path.Join(workdir, c.dest)
				for _, src := range c.srcs {
					rel := path.Clean(src)
					if strings.ContainsAny(rel, "*?[") || rel == "." || strings.HasPrefix(rel, "..") || strings.Contains(rel, "://") {
						t.Errorf("Dockerfile line %d: %s %s: copy plain paths inside the context, so this test can check them", in.line, in.cmd, src)
						continue
					}
					fi, err := os.Stat(filepath.Join(root, rel))
					if err != nil {
						t.Errorf("Dockerfile line %d: %s %s: %v", in.line, in.cmd, src, err)
						continue
					}
					if img.ignore.ignored(rel) {
						t.Errorf("Dockerfile line %d: %s %s, but .dockerignore leaves it out of the context", in.line, in.cmd, src)
					}
					at := dest
					if !fi.IsDir() && (strings.HasSuffix(c.dest, "/") || len(c.srcs) > 1) {
						at = path.Join(dest, path.Base(rel))
					}
					img.copied[st] = append(img.copied[st], placed{rel, at})
				}
			}
		}
	}
	if img.build == nil {
		t.Fatal("no stage of the Dockerfile runs go build")
	}
	return img
}

// finalCopies maps each path the final stage copies from another stage to
// "stage:source path".
func (img *image) finalCopies() map[string]string {
	copies := map[string]string{}
	for _, in := range img.stages[len(img.stages)-1].ins {
		c, err := parseCopy(in.args)
		if in.cmd != "COPY" || err != nil || c.from == "" {
			continue
		}
		for _, src := range c.srcs {
			dest := c.dest
			if strings.HasSuffix(dest, "/") {
				dest = path.Join(dest, path.Base(src))
			}
			copies[dest] = c.from + ":" + src
		}
	}
	return copies
}

// TestDockerfileBuild checks that the build stage compiles
// ./cmd/sam-ml-backend with cgo on the Go of go.mod, and that every file
// that build reads is in the context and copied to where the module's
// layout puts it.
func TestDockerfileBuild(t *testing.T) {
	img := loadImage(t)
	build, run := img.build, img.run
	if !strings.Contains(run.args, "./cmd/sam-ml-backend") {
		t.Errorf("Dockerfile line %d: go build does not build ./cmd/sam-ml-backend", run.line)
	}
	if !strings.Contains(run.args, "CGO_ENABLED=1") {
		t.Errorf("Dockerfile line %d: go build without CGO_ENABLED=1: internal/onnxrt needs cgo to load ONNX Runtime", run.line)
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(goMod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "golang:" + string(goVersion[1]) + "-"; !strings.HasPrefix(build.base, want) {
		t.Errorf("the build stage starts from %s; want %s… to match go.mod", build.base, want)
	}
	workdir := "/"
	for _, in := range build.ins {
		if in.cmd == "WORKDIR" {
			workdir = path.Join(workdir, in.args)
		}
	}
	for _, f := range buildFiles(t) {
		if img.ignore.ignored(f) {
			t.Errorf("the build needs %s, but .dockerignore leaves it out", f)
			continue
		}
		want := path.Join(workdir, f)
		if !slices.ContainsFunc(img.copied[build], func(p placed) bool {
			return within(f, p.src) && path.Join(p.dest, strings.TrimPrefix(strings.TrimPrefix(f, p.src), "/")) == want
		}) {
			t.Errorf("the build needs %s, but the build stage does not copy it to %s", f, want)
		}
	}
}

// TestDockerfileImage checks the final stage: the binary runs as a
// non-root user, on the Debian release it was built on (it links glibc),
// with glibc, libstdc++ and libgcc_s for ONNX Runtime, and listens where it
// says.
func TestDockerfileImage(t *testing.T) {
	img := loadImage(t)
	final := img.stages[len(img.stages)-1]
	imageUser(t, img.stages)
	if got, want := debianRelease(final.base), debianRelease(img.build.base); got == "" || got != want {
		t.Errorf("the final stage is %s (Debian %q) and the build stage %s (Debian %q): build on the release the binary runs on, or its glibc may be too old", final.base, got, img.build.base, want)
	}
	if strings.Contains(final.base, "distroless/") && !strings.Contains(final.base, "distroless/cc") {
		t.Errorf("the final stage is %s: ONNX Runtime needs libstdc++ and libgcc_s, which only distroless/cc has", final.base)
	}
	out := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(img.run.args)
	if out == nil {
		t.Fatalf("Dockerfile line %d: go build has no -o", img.run.line)
	}
	var entrypoint []string
	for _, in := range final.ins {
		if in.cmd == "ENTRYPOINT" {
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Errorf("Dockerfile line %d: ENTRYPOINT must be the exec form (there is no shell): %v", in.line, err)
			}
		}
	}
	copies := img.finalCopies()
	if len(entrypoint) == 0 {
		t.Error("the final stage has no ENTRYPOINT")
	} else if got, want := copies[entrypoint[0]], img.build.name+":"+out[1]; got != want {
		t.Errorf("ENTRYPOINT runs %s, copied from %q; want the go build output %s", entrypoint[0], got, want)
	}

	env := imageEnv(t, final)
	port := env["PORT"]
	if !slices.ContainsFunc(final.ins, func(in instruction) bool {
		return in.cmd == "EXPOSE" && slices.Contains(strings.Fields(in.args), port)
	}) || port == "" {
		t.Errorf("the final stage sets PORT=%q but does not EXPOSE it", port)
	}
	loadConfig(t, "the image", env)
}

// TestDockerfileONNXRuntime checks that the image holds the ONNX Runtime
// library scripts/fetch-onnxruntime.sh pins, fetched by that script, and
// that ONNXRUNTIME_LIB points at it.
func TestDockerfileONNXRuntime(t *testing.T) {
	img := loadImage(t)
	env := imageEnv(t, img.stages[len(img.stages)-1])
	lib := env["ONNXRUNTIME_LIB"]
	if !path.IsAbs(lib) {
		t.Fatalf("the final stage's ONNXRUNTIME_LIB is %q; want the absolute path of the library in the image", lib)
	}
	copies := img.finalCopies()
	from, src, _ := strings.Cut(copies[lib], ":")
	ort := stageByName(img.stages, from)
	if ort == nil {
		t.Fatalf("ONNXRUNTIME_LIB=%s is not copied from an earlier stage (copied from %q)", lib, copies[lib])
	}
	fetch := regexp.MustCompile(`SAM_CACHE_DIR=(\S+)\s+(?:bash\s+)?\S*fetch-onnxruntime\.sh`)
	var cacheDir string
	for _, in := range ort.ins {
		if m := fetch.FindStringSubmatch(in.args); in.cmd == "RUN" && m != nil {
			cacheDir = m[1]
		}
	}
	if !slices.ContainsFunc(img.copied[ort], func(p placed) bool { return p.src == "scripts/fetch-onnxruntime.sh" }) || cacheDir == "" {
		t.Fatalf("stage %s does not copy and run scripts/fetch-onnxruntime.sh with SAM_CACHE_DIR set, so the library is not the one pinned there", from)
	}
	if want := path.Join(cacheDir, "onnxruntime-"+ortVersion(t), "libonnxruntime.so.1"); src != want {
		t.Errorf("ONNXRUNTIME_LIB is copied from %s in stage %s; scripts/fetch-onnxruntime.sh puts the library at %s", src, from, want)
	}
	if cfg := loadConfig(t, "the image", env); cfg.ONNXRuntimeLib != lib {
		t.Errorf("with the image's environment the backend loads ONNX Runtime from %s, want %s", cfg.ONNXRuntimeLib, lib)
	}
}
