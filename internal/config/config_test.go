package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(env(map[string]string{"HOME": "/home/u"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9090 || c.LogLevel != "INFO" || !c.Demo() || c.EmbeddingCacheBytes != 256<<20 ||
		c.MaxRequestBytes != 32<<20 || c.FetchTimeout != 30*time.Second || c.EncoderConcurrency != 1 {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if want := "/home/u/.cache/sam-ml-backend/onnxruntime-1.30.0/libonnxruntime.so.1"; c.ONNXRuntimeLib != want {
		t.Errorf("ONNXRuntimeLib = %q, want %q", c.ONNXRuntimeLib, want)
	}
	if c.LabelStudioURL != nil {
		t.Errorf("LabelStudioURL = %v, want nil", c.LabelStudioURL)
	}
	if c.UseOrgMiddleware || c.DBPath != "/label-studio-data/label_studio.sqlite3" || c.OrgCacheSize != 128 || c.OrgCacheTTL != 5*time.Minute {
		t.Errorf("org defaults: %v %q %d %v", c.UseOrgMiddleware, c.DBPath, c.OrgCacheSize, c.OrgCacheTTL)
	}
}

func TestAliasesAndPrecedence(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"LABEL_STUDIO_URL":          "http://ls:8080/sub/",
		"EMBEDDING_CACHE_MB":        "0",
		"LABEL_STUDIO_API_KEY":      "key-b",
		"LABEL_STUDIO_ACCESS_TOKEN": "key-a",
		"LOCAL_FILES_DOCUMENT_ROOT": "/data",
		"LOG_LEVEL":                 "warn",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LabelStudioURL.String(); got != "http://ls:8080/sub" {
		t.Errorf("LabelStudioURL = %q, want the URL without its trailing slash", got)
	}
	if c.APIToken != "key-a" {
		t.Errorf("APIToken: LABEL_STUDIO_ACCESS_TOKEN must win over LABEL_STUDIO_API_KEY")
	}
	if c.EmbeddingCacheBytes != 0 {
		t.Errorf("EmbeddingCacheBytes = %d, want 0 (off)", c.EmbeddingCacheBytes)
	}
	if c.LocalFilesRoot != "/data" || c.LogLevel != "WARNING" {
		t.Errorf("LocalFilesRoot %q LogLevel %q", c.LocalFilesRoot, c.LogLevel)
	}
	c, err = config.Load(env(map[string]string{"LABEL_STUDIO_HOST": "https://a", "LABEL_STUDIO_URL": "http://b"}))
	if err != nil || c.LabelStudioURL.Host != "a" {
		t.Errorf("LABEL_STUDIO_HOST must win over LABEL_STUDIO_URL: %v %v", c, err)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PORT": "http"}, `PORT="http": not a whole number`},
		{map[string]string{"PORT": "70000"}, `PORT="70000"`},
		{map[string]string{"LABEL_STUDIO_URL": "172.20.0.4:8080"}, `LABEL_STUDIO_URL="172.20.0.4:8080": needs a scheme`},
		{map[string]string{"LABEL_STUDIO_HOST": "ftp://x"}, `LABEL_STUDIO_HOST="ftp://x": the scheme must be http or https`},
		{map[string]string{"LOG_LEVEL": "LOUD"}, `LOG_LEVEL="LOUD"`},
		{map[string]string{"SAM_ENCODER_PATH": "/m/e.onnx"}, `SAM_DECODER_PATH`},
		{map[string]string{"FETCH_TIMEOUT": "soon"}, `FETCH_TIMEOUT="soon"`},
		{map[string]string{"EMBEDDING_CACHE_MB": "-1"}, `EMBEDDING_CACHE_MB="-1"`},
		{map[string]string{"USE_ORG_MIDDLEWARE": "maybe"}, `USE_ORG_MIDDLEWARE="maybe"`},
		{map[string]string{"USE_ORG_MIDDLEWARE": "true"}, `LABEL_STUDIO_URL="": is needed with USE_ORG_MIDDLEWARE=true`},
		{map[string]string{"ORG_CACHE_SIZE": "0"}, `ORG_CACHE_SIZE="0"`},
		{map[string]string{"ORG_CACHE_TTL": "forever"}, `ORG_CACHE_TTL="forever"`},
		{map[string]string{"LOCAL_FILES_DOCUMENT_ROOT": "data"}, `LOCAL_FILES_DOCUMENT_ROOT="data": must be an absolute path`},
		{map[string]string{"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": "data"}, `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="data"`},
		{map[string]string{"LABEL_STUDIO_ACCESS_TOKEN": "k"}, `LABEL_STUDIO_URL="": is needed with LABEL_STUDIO_ACCESS_TOKEN`},
		{map[string]string{"LABEL_STUDIO_API_KEY": "k"}, `is needed with LABEL_STUDIO_API_KEY`},
		{map[string]string{"MAX_JSON_DEPTH": "0"}, `MAX_JSON_DEPTH="0"`},
		{map[string]string{"LOG_FORMAT": "xml"}, `LOG_FORMAT="xml": want text or json`},
		{map[string]string{"HEALTH_VERIFY_TOKENS": "sometimes"}, `HEALTH_VERIFY_TOKENS="sometimes": want true or false`},
		{map[string]string{"ORG_AUTH_SECRET": "short-secret"}, `ORG_AUTH_SECRET="<12 characters hidden>": is too short: use at least 32 characters`},
		{map[string]string{"ORG_AUTH_SECRET": strings.Repeat("s", 32)}, `ORG_AUTH_SECRET="<32 characters hidden>": needs USE_ORG_MIDDLEWARE=true`},
	}
	for _, tt := range tests {
		_, err := config.Load(env(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v) error = %v, want one containing %q", tt.env, err, tt.want)
		}
	}
}

func TestSecretsAreMasked(t *testing.T) {
	for _, raw := range []string{
		"http://admin:hunter2@ls:8080",
		"http://admin:hunter2%zz@ls:8080",
		"admin:hunter2@ls:8080",
		"ftp://admin:hunter2@ls",
		"http://admin:hunter2@ls:8080/?q=1",
	} {
		_, err := config.Load(env(map[string]string{"LABEL_STUDIO_URL": raw}))
		if err == nil {
			t.Errorf("accepted %q", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range config.Settings {
		for _, n := range s.Names {
			if !strings.Contains(readme, "`"+n+"`") {
				t.Errorf("README.md does not list the setting `%s`", n)
			}
		}
	}
}

func TestPostgresSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LABEL_STUDIO_DB_URL": "postgres://ls:pw@db:5432/labelstudio"}, "postgres://ls:pw@db:5432/labelstudio"},
		{map[string]string{"DJANGO_DB": "default", "POSTGRE_HOST": "db", "POSTGRE_NAME": "ls", "POSTGRE_USER": "u", "POSTGRE_PASSWORD": "p@ss/w"}, "postgres://u:p%40ss%2Fw@db:5432/ls"},
		{map[string]string{"LABEL_STUDIO_DJANGO_DB": "default", "LABEL_STUDIO_POSTGRE_HOST": "h", "POSTGRE_HOST": "ignored", "LABEL_STUDIO_POSTGRE_NAME": "n", "POSTGRE_PORT": "6432"}, "postgres://postgres:postgres@h:6432/n"},
		{map[string]string{"DJANGO_DB": "postgresql"}, "postgres://postgres:postgres@localhost:5432/postgres"}, // Label Studio's defaults
		{map[string]string{"POSTGRE_HOST": "db", "POSTGRE_NAME": "ls"}, ""},                                    // DJANGO_DB is sqlite by default
	}
	for _, tt := range tests {
		c, err := config.Load(env(tt.env))
		if err != nil {
			t.Errorf("Load(%v): %v", tt.env, err)
			continue
		}
		if c.DBURL != tt.want {
			t.Errorf("Load(%v).DBURL = %q, want %q", tt.env, c.DBURL, tt.want)
		}
	}
	for _, dsn := range []string{"postgres://ls:hunter2@db:5432/labelstudio", "postgres://ls@db:5432/labelstudio?password=hunter2&sslmode=disable"} {
		c, _ := config.Load(env(map[string]string{"LABEL_STUDIO_DB_URL": dsn}))
		if got := c.RedactedDBURL(); strings.Contains(got, "hunter2") || got != "postgres://ls@db:5432/labelstudio" {
			t.Errorf("RedactedDBURL() of %q = %q, want postgres://ls@db:5432/labelstudio", dsn, got)
		}
	}
	for _, bad := range []map[string]string{
		{"LABEL_STUDIO_DB_URL": "mysql://u:hunter2@db/x"},
		{"LABEL_STUDIO_DB_URL": "postgres://u:hunter2@db"},
		{"LABEL_STUDIO_DB_URL": "postgres://u:hun/ter2@db:5432/x"},
		{"LABEL_STUDIO_DB_URL": "postgres://db?password=hunter2"},
		{"DJANGO_DB": "default", "POSTGRE_HOST": "h", "POSTGRE_NAME": "x", "POSTGRE_PORT": "big", "POSTGRE_PASSWORD": "hunter2"},
	} {
		_, err := config.Load(env(bad))
		if err == nil {
			t.Errorf("Load(%v) accepted it", bad)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Load(%v) error shows the password: %v", bad, err)
		}
	}
}
