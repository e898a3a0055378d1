package deploytest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
)

// root is the module root, relative to this package.
const root = "../.."

// specVariables are the environment variables of SPEC.md §1, the interface
// others depend on. Each entry lists a variable and its aliases; a
// deployment file must set at least one name of each.
var specVariables = [][]string{
	{"PORT"},
	{"LABEL_STUDIO_HOST", "LABEL_STUDIO_URL"},
	{"LABEL_STUDIO_ACCESS_TOKEN", "LABEL_STUDIO_API_KEY"},
	{"USE_ORG_MIDDLEWARE"},
	{"LABEL_STUDIO_DB_PATH"},
	{"LABEL_STUDIO_DB_URL"},
	{"DJANGO_DB"},
	{"POSTGRE_HOST"},
	{"POSTGRE_PORT"},
	{"POSTGRE_NAME"},
	{"POSTGRE_USER"},
	{"POSTGRE_PASSWORD"},
	{"ORG_TOKENS_FILE"},
	{"SAM_ENCODER_PATH"},
	{"SAM_DECODER_PATH"},
	{"ONNXRUNTIME_LIB"},
	{"BASIC_AUTH_USER"},
	{"BASIC_AUTH_PASS"},
	{"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT"},
	{"LOG_LEVEL"},
	{"ADMIN_TOKEN"},
}

// knownSettings returns every variable the backend reads, from
// config.Settings.
func knownSettings() map[string]bool {
	known := map[string]bool{}
	for _, s := range config.Settings {
		for _, n := range s.Names {
			known[n] = true
		}
	}
	return known
}

func TestSpecVariablesAreSettings(t *testing.T) {
	known := knownSettings()
	for _, group := range specVariables {
		for _, n := range group {
			if !known[n] {
				t.Errorf("SPEC variable %s is not in config.Settings", n)
			}
		}
	}
}

// checkEnvironment checks the variables a deployment file gives the
// backend: every name is one the backend reads, and every SPEC §1 variable
// is there when wantSpec is set.
func checkEnvironment(t *testing.T, where string, env map[string]string, wantSpec bool) {
	t.Helper()
	known := knownSettings()
	for n := range env {
		if !known[n] {
			t.Errorf("%s sets %s, which the backend does not read (not in config.Settings)", where, n)
		}
	}
	if !wantSpec {
		return
	}
	for _, group := range specVariables {
		if !slices.ContainsFunc(group, func(n string) bool { _, ok := env[n]; return ok }) {
			t.Errorf("%s does not set %s", where, strings.Join(group, " or "))
		}
	}
}

// loadConfig runs env through config.Load, as the backend would at start.
func loadConfig(t *testing.T, where string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the backend would refuse %s's settings: %v", where, err)
	}
	return cfg
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// shutdownBound returns how long the backend may take to stop after
// SIGTERM: the HTTP drain (shutdownTimeout) plus the grace for image work
// before the models are released, both read from internal/app.
func shutdownBound(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "internal/app/app.go"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	var total time.Duration
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`shutdownTimeout\s*=\s*(\d+)\s*\*\s*time\.Second`),
		regexp.MustCompile(`cctx, \w+ := context\.WithTimeout\(context\.Background\(\), (\d+)\s*\*\s*time\.Second\)`),
	} {
		m := re.FindStringSubmatch(src)
		if m == nil {
			t.Fatalf("internal/app/app.go no longer matches %s: update shutdownBound to read the shutdown timeouts", re)
		}
		n, _ := strconv.Atoi(m[1])
		total += time.Duration(n) * time.Second
	}
	return total
}

// parseUser parses a numeric "uid[:gid]".
func parseUser(s string) (uid, gid int64, err error) {
	u, g, hasGroup := strings.Cut(s, ":")
	uid, err = strconv.ParseInt(u, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q is not numeric: Kubernetes' runAsNonRoot can only verify a numeric uid", s)
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.ParseInt(g, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("group of %q is not numeric", s)
		}
	}
	return uid, gid, nil
}

// ortVersion returns the ONNX Runtime version scripts/fetch-onnxruntime.sh
// pins.
func ortVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "scripts/fetch-onnxruntime.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version=([0-9.]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/fetch-onnxruntime.sh has no version= line")
	}
	return string(m[1])
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in       string
		uid, gid int64
		ok       bool
	}{
		{"65532:65532", 65532, 65532, true},
		{"1001", 1001, 1001, true},
		{"0:0", 0, 0, true},
		{"nonroot", 0, 0, false},
		{"65532:nonroot", 0, 0, false},
	}
	for _, tt := range tests {
		uid, gid, err := parseUser(tt.in)
		if (err == nil) != tt.ok || uid != tt.uid || gid != tt.gid {
			t.Errorf("parseUser(%q) = %d, %d, %v; want %d, %d, ok %v", tt.in, uid, gid, err, tt.uid, tt.gid, tt.ok)
		}
	}
}
