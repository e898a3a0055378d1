// Package config reads the service's settings from the environment, checks
// them, and documents every one of them in a single table.
//
// Names follow the Python segment_anything_model backend and Label Studio
// wherever one exists, so an operator can switch backends without renaming
// anything. A bad value stops start-up with an error that names the
// variable and the value, with secrets masked.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of the service.
type Config struct {
	// Port is the TCP port to listen on, on all interfaces.
	Port int

	// LabelStudioURL is Label Studio's base URL; nil when unset.
	LabelStudioURL *url.URL
	// APIToken is the static credential: a legacy key or a personal
	// access token. Secret.
	APIToken string
	// APITokenName is the variable APIToken came from.
	APITokenName string
	// LocalFilesRoot is Label Studio's LOCAL_FILES_DOCUMENT_ROOT as mounted
	// here; "" when not mounted.
	LocalFilesRoot string

	// EncoderPath and DecoderPath are the SAM ONNX models; both empty
	// means the bundled demo stand-ins.
	EncoderPath, DecoderPath string
	// ONNXRuntimeLib is the path of libonnxruntime.so.
	ONNXRuntimeLib string
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose.
	Threads int
	// EncoderConcurrency bounds how many images are encoded at once.
	EncoderConcurrency int
	// EncoderQueue bounds the images waiting for an encoder slot.
	EncoderQueue int
	// EmbeddingCacheBytes bounds the memory of cached image embeddings.
	EmbeddingCacheBytes int64

	// BasicAuthUser and BasicAuthPass turn on HTTP basic auth when both are
	// set. The password is secret.
	BasicAuthUser, BasicAuthPass string
	// AdminToken enables POST /admin/cache/invalidate. Secret.
	AdminToken string
	// OrgAuthSecret keys each organization's own basic-auth password;
	// "" turns organization credentials off. Secret.
	OrgAuthSecret string

	// MaxRequestBytes caps a request body.
	MaxRequestBytes int64
	// MaxJSONDepth caps how deep a request body nests.
	MaxJSONDepth int
	// MaxImageBytes caps an image download.
	MaxImageBytes int64
	// MaxImagePixels caps an image's pixel count, checked before decoding.
	MaxImagePixels int64
	// FetchTimeout bounds one image download.
	FetchTimeout time.Duration
	// AllowedImageHosts may be fetched from although they are loopback,
	// link-local or private addresses.
	AllowedImageHosts []string

	// LogLevel is DEBUG, INFO, WARNING or ERROR.
	LogLevel string
	// LogFormat is "text" or "json".
	LogFormat string

	// UseOrgMiddleware turns on per-organization credentials read from
	// Label Studio's database.
	UseOrgMiddleware bool
	// DBPath is Label Studio's SQLite database, mounted read-only.
	DBPath string
	// DBURL is Label Studio's PostgreSQL database (a postgres:// URL);
	// when set it is used instead of DBPath. Secret: it may hold a
	// password.
	DBURL string
	// OrgTokensFile maps organization ids to tokens; "" when unset.
	OrgTokensFile string
	// OrgCacheSize bounds the cached projects (and organizations).
	OrgCacheSize int
	// OrgCacheTTL is how long a resolved credential is trusted.
	OrgCacheTTL time.Duration
	// OrgCacheStale is how long past OrgCacheTTL a credential serves
	// while Label Studio's database is unavailable.
	OrgCacheStale time.Duration
	// HealthInterval is how often Label Studio's database is pinged for
	// /health.
	HealthInterval time.Duration
	// HealthVerifyTokens turns on the background check of organizations'
	// tokens against Label Studio.
	HealthVerifyTokens bool
}

// MinOrgAuthSecretLen is the shortest ORG_AUTH_SECRET accepted; it is
// internal/orgauth's MinSecretLen (a test in internal/app keeps them equal).
const MinOrgAuthSecretLen = 32

// DefaultDBPath is where Label Studio's data folder is mounted in the
// backend's container: Label Studio's image keeps its database there.
const DefaultDBPath = "/label-studio-data/label_studio.sqlite3"

// Demo reports whether the bundled stand-in models are used.
func (c *Config) Demo() bool { return c.EncoderPath == "" && c.DecoderPath == "" }

// Setting documents one environment variable.
type Setting struct {
	// Names are the variable and its aliases, in the order they are read.
	Names []string
	// Default is the value used when none is set, as text.
	Default string
	// Secret marks a value that is never printed.
	Secret bool
	// Doc says what it does.
	Doc string
}

// defaultPort is the reference backend's port.
const defaultPort = 9090

// Settings lists every setting with its default, for documentation;
// TestREADMEListsEverySetting checks that the README's table names each one.
var Settings = []Setting{
	{Names: []string{"PORT"}, Default: "9090", Doc: "TCP port to listen on, on all interfaces; 0 picks a free one."},
	{Names: []string{"LABEL_STUDIO_HOST", "LABEL_STUDIO_URL"}, Doc: "Label Studio's base URL with its scheme, e.g. `http://label-studio:8080`; a sub-path is allowed. Needed for `/data/…` and cloud-storage images."},
	{Names: []string{"LABEL_STUDIO_ACCESS_TOKEN", "LABEL_STUDIO_API_KEY"}, Secret: true, Doc: "Static credential: a legacy API key (sent as `Token`) or a personal access token (exchanged at `/api/token/refresh/`, sent as `Bearer`). Detected automatically."},
	{Names: []string{"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT"}, Doc: "Where Label Studio's local-files root is mounted here; `/data/local-files/?d=…` images are read from it when present, else fetched over HTTP."},
	{Names: []string{"SAM_ENCODER_PATH"}, Doc: "SAM encoder ONNX file. Unset together with `SAM_DECODER_PATH`: the bundled demo stand-ins are used."},
	{Names: []string{"SAM_DECODER_PATH"}, Doc: "SAM decoder ONNX file (the official `SamOnnxModel` export, one or four masks)."},
	{Names: []string{"ONNXRUNTIME_LIB"}, Default: "the cache of `scripts/fetch-onnxruntime.sh`", Doc: "Path of `libonnxruntime.so` (1.24 or later)."},
	{Names: []string{"SAM_THREADS"}, Default: "0", Doc: "ONNX Runtime intra-op threads; 0 lets ONNX Runtime use every core."},
	{Names: []string{"SAM_ENCODER_CONCURRENCY"}, Default: "1", Doc: "How many images may be encoded at once; more only helps with many cores."},
	{Names: []string{"SAM_ENCODER_QUEUE"}, Default: "16", Doc: "How many new images may wait for the encoder; one more gets a 503 with `Retry-After` instead of piling up. With the organization middleware one organization may take three quarters of it (and of `SAM_ENCODER_CONCURRENCY`)."},
	{Names: []string{"EMBEDDING_CACHE_MB"}, Default: "256", Doc: "Memory for cached image embeddings (4 MiB each), so further clicks on an image skip the download and the encoder; 0 turns the cache off."},
	{Names: []string{"BASIC_AUTH_USER"}, Doc: "Basic-auth user; auth is on only when both user and password are set. Covers every route but `/webhook`."},
	{Names: []string{"BASIC_AUTH_PASS"}, Secret: true, Doc: "Basic-auth password."},
	{Names: []string{"ADMIN_TOKEN"}, Secret: true, Doc: "Enables `POST /admin/cache/invalidate` with `Authorization: Bearer <token>`; the route is 404 while unset."},
	{Names: []string{"MAX_REQUEST_BYTES"}, Default: "33554432", Doc: "Largest request body (interactive payloads carry drafts)."},
	{Names: []string{"MAX_JSON_DEPTH"}, Default: "100", Doc: "How deep a request body's arrays and objects may nest; deeper is a 400 before the body is decoded."},
	{Names: []string{"MAX_IMAGE_BYTES"}, Default: "67108864", Doc: "Largest image download."},
	{Names: []string{"MAX_IMAGE_PIXELS"}, Default: "100000000", Doc: "Largest image, in pixels, checked from the header before decoding (at most 1000000000); also the largest mask when the editor's size for the image differs from the image's."},
	{Names: []string{"ALLOWED_IMAGE_HOSTS"}, Doc: "Comma-separated hosts (`host` or `host:port`) that images may be fetched from although they are loopback, link-local or private addresses, e.g. `minio:9000`. Label Studio's own origin is always allowed."},
	{Names: []string{"FETCH_TIMEOUT"}, Default: "30s", Doc: "Time limit for one image download."},
	{Names: []string{"LOG_LEVEL"}, Default: "INFO", Doc: "`DEBUG`, `INFO`, `WARNING` or `ERROR`."},
	{Names: []string{"LOG_FORMAT"}, Default: "text", Doc: "`text` (logfmt) or `json` (one JSON object per line). Lines of a request carry its `request_id`."},
	{Names: []string{"SAM_CACHE_DIR"}, Default: "~/.cache/sam-ml-backend", Doc: "Where `scripts/fetch-onnxruntime.sh` caches the ONNX Runtime library, and where the backend looks for it."},
	{Names: []string{"USE_ORG_MIDDLEWARE"}, Default: "false", Doc: "`true`: each request uses the credential of the organization that owns its project, read from Label Studio's database (see Multiple organizations)."},
	{Names: []string{"LABEL_STUDIO_DB_PATH"}, Default: "`" + DefaultDBPath + "`", Doc: "Label Studio's SQLite database, opened read-only."},
	{Names: []string{"LABEL_STUDIO_DB_URL"}, Secret: true, Doc: "Label Studio's PostgreSQL database as `postgres://user:password@host:5432/name`; used instead of the SQLite file. Read-only transactions, a statement timeout, at most 4 connections."},
	{Names: []string{"DJANGO_DB", "POSTGRE_HOST", "POSTGRE_PORT", "POSTGRE_NAME", "POSTGRE_USER", "POSTGRE_PASSWORD"}, Doc: "Label Studio's own PostgreSQL settings, read when `LABEL_STUDIO_DB_URL` is unset and `DJANGO_DB` is `default` or `postgresql`; each may carry the `LABEL_STUDIO_` prefix, and unset ones take Label Studio's defaults (host `localhost`, port 5432, name, user and password `postgres`)."},
	{Names: []string{"ORG_AUTH_SECRET"}, Secret: true, Doc: "Turns on per-organization backend credentials: organization O authenticates as `org-O` with the password `sam-ml-backend org-credentials O` prints, and may touch only its own projects. At least 32 characters; needs `USE_ORG_MIDDLEWARE=true`. `BASIC_AUTH_*` keep working beside it."},
	{Names: []string{"ORG_TOKENS_FILE"}, Doc: "JSON object mapping organization ids to tokens (legacy keys or personal access tokens), for organizations whose token cannot come from the database. Reloaded when it changes. Secret."},
	{Names: []string{"ORG_CACHE_SIZE"}, Default: "128", Doc: "Projects (and organizations) whose credential is cached."},
	{Names: []string{"ORG_CACHE_TTL"}, Default: "5m", Doc: "How long a resolved credential is trusted before the database is read again."},
	{Names: []string{"HEALTH_INTERVAL"}, Default: "15s", Doc: "How often Label Studio's database (and, with `HEALTH_VERIFY_TOKENS`, the credentials) are checked in the background, for `/health`."},
	{Names: []string{"HEALTH_VERIFY_TOKENS"}, Default: "false", Doc: "`true`: every `HEALTH_INTERVAL`, check each organization's resolved token against Label Studio (`GET /api/current-user/whoami`); `/health` shows the result per organization, and a refused token fails over to the static credential where one is set."},
	{Names: []string{"ORG_CACHE_STALE"}, Default: "1h", Doc: "How long past `ORG_CACHE_TTL` a cached credential keeps serving while Label Studio's database is unavailable."},
}

// Error is a bad setting.
type Error struct {
	// Name is the variable.
	Name string
	// Value is the value as given, or a mask for a secret.
	Value string
	// Reason says what is wrong.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("bad setting %s=%q: %s", e.Name, e.Value, e.Reason)
}

// DefaultORTLib returns where scripts/fetch-onnxruntime.sh caches the ONNX
// Runtime library.
func DefaultORTLib(getenv func(string) string) string {
	dir := getenv("SAM_CACHE_DIR")
	if dir == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				home, _ = os.UserHomeDir()
			}
			base = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(base, "sam-ml-backend")
	}
	return filepath.Join(dir, "onnxruntime-1.30.0", "libonnxruntime.so.1")
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (*Config, error) {
	r := reader{getenv: getenv}
	c := &Config{
		Port:                int(r.int("PORT", defaultPort, 0, 65535)),
		EncoderPath:         getenv("SAM_ENCODER_PATH"),
		DecoderPath:         getenv("SAM_DECODER_PATH"),
		ONNXRuntimeLib:      getenv("ONNXRUNTIME_LIB"),
		Threads:             int(r.int("SAM_THREADS", 0, 0, 1024)),
		EncoderConcurrency:  int(r.int("SAM_ENCODER_CONCURRENCY", 1, 1, 1024)),
		EncoderQueue:        int(r.int("SAM_ENCODER_QUEUE", 16, 1, 1<<16)),
		EmbeddingCacheBytes: r.int("EMBEDDING_CACHE_MB", 256, 0, 1<<20) << 20,
		BasicAuthUser:       getenv("BASIC_AUTH_USER"),
		BasicAuthPass:       getenv("BASIC_AUTH_PASS"),
		AdminToken:          getenv("ADMIN_TOKEN"),
		MaxRequestBytes:     r.int("MAX_REQUEST_BYTES", 32<<20, 1<<10, 1<<40),
		MaxJSONDepth:        int(r.int("MAX_JSON_DEPTH", 100, 1, 10000)),
		MaxImageBytes:       r.int("MAX_IMAGE_BYTES", 64<<20, 1<<10, 1<<40),
		MaxImagePixels:      r.int("MAX_IMAGE_PIXELS", 100_000_000, 1, 1_000_000_000),
		FetchTimeout:        r.duration("FETCH_TIMEOUT", 30*time.Second),
		LogLevel:            strings.ToUpper(r.or("LOG_LEVEL", "INFO")),
	}
	urlName, rawURL := r.firstNamed("LABEL_STUDIO_HOST", "LABEL_STUDIO_URL")
	if rawURL != "" {
		c.LabelStudioURL = r.labelStudioURL(urlName, rawURL)
	}
	tokenName, token := r.firstNamed("LABEL_STUDIO_ACCESS_TOKEN", "LABEL_STUDIO_API_KEY")
	c.APIToken, c.APITokenName = token, tokenName
	if token != "" && rawURL == "" {
		r.fail("LABEL_STUDIO_URL", "", false, "is needed with "+tokenName+": it says where the token may be sent")
	}
	rootName, root := r.firstNamed("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT")
	c.LocalFilesRoot = root
	if root != "" && !filepath.IsAbs(root) {
		r.fail(rootName, root, false, "must be an absolute path")
	}
	if (c.EncoderPath == "") != (c.DecoderPath == "") {
		if c.EncoderPath == "" {
			r.fail("SAM_ENCODER_PATH", "", false, "is needed with SAM_DECODER_PATH")
		} else {
			r.fail("SAM_DECODER_PATH", "", false, "is needed with SAM_ENCODER_PATH")
		}
	}
	switch c.LogLevel {
	case "DEBUG", "INFO", "WARNING", "ERROR":
	case "WARN":
		c.LogLevel = "WARNING"
	default:
		r.fail("LOG_LEVEL", c.LogLevel, false, "want DEBUG, INFO, WARNING or ERROR")
	}
	switch c.LogFormat = strings.ToLower(r.or("LOG_FORMAT", "text")); c.LogFormat {
	case "text", "json":
	default:
		r.fail("LOG_FORMAT", c.LogFormat, false, "want text or json")
	}
	if c.UseOrgMiddleware = r.bool("USE_ORG_MIDDLEWARE"); c.UseOrgMiddleware && rawURL == "" {
		r.fail("LABEL_STUDIO_URL", "", false, "is needed with USE_ORG_MIDDLEWARE=true: it says where the organizations' tokens may be sent")
	}
	for _, h := range strings.Split(getenv("ALLOWED_IMAGE_HOSTS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.AllowedImageHosts = append(c.AllowedImageHosts, h)
		}
	}
	if c.OrgAuthSecret = getenv("ORG_AUTH_SECRET"); c.OrgAuthSecret != "" {
		switch {
		case len(c.OrgAuthSecret) < MinOrgAuthSecretLen:
			r.fail("ORG_AUTH_SECRET", c.OrgAuthSecret, true, "is too short: use at least 32 characters, e.g. the output of openssl rand -hex 32")
		case !c.UseOrgMiddleware:
			r.fail("ORG_AUTH_SECRET", c.OrgAuthSecret, true, "needs USE_ORG_MIDDLEWARE=true: organizations' projects are checked in Label Studio's database")
		}
	}
	c.DBPath = r.or("LABEL_STUDIO_DB_PATH", DefaultDBPath)
	c.DBURL = r.postgresURL()
	c.OrgTokensFile = getenv("ORG_TOKENS_FILE")
	c.OrgCacheSize = int(r.int("ORG_CACHE_SIZE", 128, 1, 1<<20))
	c.OrgCacheTTL = r.duration("ORG_CACHE_TTL", 5*time.Minute)
	c.OrgCacheStale = r.duration("ORG_CACHE_STALE", time.Hour)
	c.HealthInterval = r.duration("HEALTH_INTERVAL", 15*time.Second)
	c.HealthVerifyTokens = r.bool("HEALTH_VERIFY_TOKENS")
	if c.ONNXRuntimeLib == "" {
		c.ONNXRuntimeLib = DefaultORTLib(getenv)
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

type reader struct {
	getenv func(string) string
	err    error
}

func (r *reader) fail(name, value string, secret bool, reason string) {
	if r.err != nil {
		return
	}
	if secret {
		value = mask(value)
	}
	r.err = &Error{Name: name, Value: value, Reason: reason}
}

func (r *reader) or(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

// labelStudioURL checks Label Studio's base URL and returns it without a
// trailing slash. Error messages hide any user:password in it.
func (r *reader) labelStudioURL(name, raw string) *url.URL {
	shown := redactUserinfo(raw)
	u, err := url.Parse(raw)
	switch {
	case !strings.Contains(raw, "://"):
		r.fail(name, shown, false, "needs a scheme: write http://"+strings.TrimPrefix(shown, "//")+" (or https://)")
	case err == nil && u.Scheme != "http" && u.Scheme != "https":
		r.fail(name, shown, false, "the scheme must be http or https")
	case err != nil:
		r.fail(name, shown, false, "not a URL")
	case u.Host == "":
		r.fail(name, shown, false, "has no host")
	case u.User != nil:
		r.fail(name, shown, false, "must not carry credentials; use LABEL_STUDIO_API_KEY")
	case u.RawQuery != "" || u.Fragment != "":
		r.fail(name, shown, false, "must not have a query or fragment")
	default:
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		return u
	}
	return nil
}

// lsEnv reads one of Label Studio's own settings the way its get_env does:
// LABEL_STUDIO_<name>, then HEARTEX_<name>, then <name>.
func (r *reader) lsEnv(name string) (string, string) {
	return r.firstNamed("LABEL_STUDIO_"+name, "HEARTEX_"+name, name)
}

// postgresURL returns LABEL_STUDIO_DB_URL, or a URL built from Label
// Studio's POSTGRE_* settings (with Label Studio's defaults) when DJANGO_DB
// is "default" or "postgresql", or "".
func (r *reader) postgresURL() string {
	if raw := r.getenv("LABEL_STUDIO_DB_URL"); raw != "" {
		// The URL can hold a password in several places (user:pw@,
		// ?password=, unescaped), so a bad one is never shown.
		u, err := url.Parse(raw)
		switch {
		case err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql":
			r.fail("LABEL_STUDIO_DB_URL", raw, true, "want postgres://user:password@host:5432/name (special characters in the password %-escaped)")
		case u.Host == "" || strings.Trim(u.Path, "/") == "":
			r.fail("LABEL_STUDIO_DB_URL", raw, true, "needs a host and a database name, as in postgres://user:password@host:5432/name")
		}
		return raw
	}
	if _, db := r.lsEnv("DJANGO_DB"); db != "default" && db != "postgresql" {
		return ""
	}
	get := func(name, def string) (string, string) {
		n, v := r.lsEnv(name)
		if v == "" {
			v = def
		}
		return n, v
	}
	_, host := get("POSTGRE_HOST", "localhost")
	portName, port := get("POSTGRE_PORT", "5432")
	_, name := get("POSTGRE_NAME", "postgres")
	_, user := get("POSTGRE_USER", "postgres")
	_, pass := get("POSTGRE_PASSWORD", "postgres")
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		r.fail(portName, port, false, "not a port")
		return ""
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, port), Path: "/" + name, User: url.UserPassword(user, pass)}
	return u.String()
}

// RedactedDBURL returns DBURL for logs: scheme, user, host and database,
// without a password or query parameters (which may carry one).
func (c *Config) RedactedDBURL() string {
	u, err := url.Parse(c.DBURL)
	if err != nil {
		return "(unparsable URL)"
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.User != nil {
		shown.User = url.User(u.User.Username())
	}
	return shown.String()
}

// redactUserinfo replaces a "user:password@" before the host with "***@".
func redactUserinfo(raw string) string {
	rest := raw
	prefix := ""
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	if at := strings.LastIndex(host, "@"); at >= 0 {
		return prefix + "***" + rest[at:]
	}
	return raw
}

func (r *reader) firstNamed(names ...string) (string, string) {
	for _, n := range names {
		if v := r.getenv(n); v != "" {
			return n, v
		}
	}
	return names[0], ""
}

func (r *reader) int(name string, def, min, max int64) int64 {
	raw := r.getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		r.fail(name, raw, false, "not a whole number")
		return def
	}
	if v < min || v > max {
		r.fail(name, raw, false, fmt.Sprintf("want %d to %d", min, max))
		return def
	}
	return v
}

// bool reads a true/false setting; unset is false.
func (r *reader) bool(name string) bool {
	switch v := strings.ToLower(r.or(name, "false")); v {
	case "false", "0", "no", "off":
		return false
	case "true", "1", "yes", "on":
		return true
	default:
		r.fail(name, v, false, "want true or false")
		return false
	}
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	raw := r.getenv(name)
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	if err != nil || v <= 0 {
		r.fail(name, raw, false, "want a positive duration such as 30s or 2m")
		return def
	}
	return v
}

// mask hides a secret, keeping only its length.
func mask(s string) string {
	return fmt.Sprintf("<%d characters hidden>", len(s))
}
