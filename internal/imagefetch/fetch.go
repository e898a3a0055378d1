// Package imagefetch fetches and decodes the image of a Label Studio task.
//
// Resolve maps a task's data value (an upload path, a local-files URL, a
// cloud storage URI or an absolute URL) to a Location without any I/O;
// Fetch reads the Location, from disk under the local-files document root
// or over HTTP, and decodes it with its EXIF orientation applied, so that
// the image has the size the Label Studio editor shows.
//
// Label Studio credentials go only to Label Studio's origin (scheme, host
// and port), on the first request and on every redirect hop that stays on
// that origin; a redirect elsewhere (the presigned URL that
// /tasks/<id>/resolve/ answers with, for instance) never carries them.
//
// Absolute URLs whose destination is a loopback, link-local, private,
// carrier-grade NAT or unspecified address are refused with a 403, on the
// first request, on every redirect hop and, for host names, on every
// address they resolve to when dialing, unless the URL is on Label
// Studio's origin or its host is in Config.AllowedHosts
// (ALLOWED_IMAGE_HOSTS): a task must not make the backend fetch from the
// cloud metadata service or the private network.
//
// Every error of this package is an *Error whose text is safe to show to a
// client, with the HTTP status the backend should answer with.
package imagefetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults for Config.
const (
	// DefaultMaxBytes caps the size of a downloaded or read image file.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxPixels caps width×height, checked from the image header
	// before decoding (a 100 MP RGBA image takes 400 MB).
	DefaultMaxPixels = 100_000_000
	// DefaultTimeout bounds one whole Fetch, redirects and body included.
	DefaultTimeout = 30 * time.Second
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "sam-ml-backend"
	// maxRedirects is how many redirect hops a fetch follows.
	maxRedirects = 10
)

// Credentials supplies the Authorization header for requests to Label
// Studio. project is the raw "project" string of the predict request.
type Credentials interface {
	// Authorization returns the header value, or "" when there is none.
	Authorization(ctx context.Context, project string) (string, error)
	// Rejected reports that Label Studio answered 401 or 403 to header, so
	// that the next Authorization returns a fresh one if it can.
	Rejected(project, header string)
}

// Config configures a Fetcher.
type Config struct {
	// LabelStudio is Label Studio's base URL, which may include a sub-path.
	// When nil, Label Studio paths and cloud URIs cannot be resolved.
	LabelStudio *url.URL
	// LocalFilesRoot is LOCAL_FILES_DOCUMENT_ROOT as mounted here; "" when
	// it is not mounted.
	LocalFilesRoot string
	// Credentials supplies the Authorization header for Label Studio; nil
	// means none.
	Credentials Credentials
	// MaxBytes caps the file size (default DefaultMaxBytes).
	MaxBytes int64
	// MaxPixels caps width×height (default DefaultMaxPixels).
	MaxPixels int64
	// Timeout bounds a whole Fetch (default DefaultTimeout).
	Timeout time.Duration
	// AllowedHosts (ALLOWED_IMAGE_HOSTS) lists the image servers that may
	// be fetched from although they are on a loopback, link-local or
	// private address: "host" allows any port, "host:port" (or
	// "[v6addr]:port") that port only; host names compare
	// case-insensitively. Label Studio's origin is always allowed.
	AllowedHosts []string
	// Transport carries the HTTP requests (default: a clone of
	// http.DefaultTransport). An *http.Transport is cloned and its dialer
	// wrapped, so that the address of every connection is checked; any
	// other RoundTripper gets the URL checks only (literal addresses, on
	// every redirect hop), not the check of resolved addresses. When the
	// transport uses a proxy, the proxy resolves host names, and only the
	// URL checks apply.
	Transport http.RoundTripper
	// UserAgent is the User-Agent header (default DefaultUserAgent).
	UserAgent string
	// Observe, if set, is called after every download (before decoding)
	// with how it ended, the bytes read and the time taken. status is the
	// HTTP status code of the final answer ("200", "404"), "local" for a
	// file found under LocalFilesRoot (read, or refused as too big or
	// unreadable), "refused" for a location not
	// fetched (a blocked address, a bad reference) and "error" when no
	// answer came (network errors, timeouts, a failed credential).
	Observe func(status string, bytes int64, d time.Duration)
}

// Fetcher resolves and fetches task images. It is safe for concurrent use.
type Fetcher struct {
	ls        *url.URL // nil when not configured
	subPath   string   // ls.Path without its trailing slash: "" or "/ls"
	localRoot string
	creds     Credentials
	maxBytes  int64
	maxPixels int64
	timeout   time.Duration
	userAgent string
	client    *http.Client
	allowed   map[string]bool // hostKey or hostKey:port
	guard     *guard          // nil when Transport is not an *http.Transport
	observe   func(status string, bytes int64, d time.Duration)
}

// New returns a Fetcher for cfg, with defaults for its zero fields.
func New(cfg Config) (*Fetcher, error) {
	var err error
	f := &Fetcher{
		localRoot: cfg.LocalFilesRoot,
		creds:     cfg.Credentials,
		maxBytes:  cfg.MaxBytes,
		maxPixels: cfg.MaxPixels,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		observe:   cfg.Observe,
	}
	if cfg.LabelStudio != nil {
		u := *cfg.LabelStudio
		if s := strings.ToLower(u.Scheme); s != "http" && s != "https" || u.Hostname() == "" {
			return nil, fmt.Errorf("check LABEL_STUDIO_URL %q: want an http:// or https:// URL with a host", safeName(&u))
		}
		u.User = nil
		u.RawQuery, u.Fragment = "", ""
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		f.ls = &u
		f.subPath = u.Path
	}
	switch {
	case f.maxBytes < 0:
		return nil, fmt.Errorf("check MaxBytes %d: want a positive size", cfg.MaxBytes)
	case f.maxBytes == 0:
		f.maxBytes = DefaultMaxBytes
	}
	switch {
	case f.maxPixels < 0:
		return nil, fmt.Errorf("check MaxPixels %d: want a positive count", cfg.MaxPixels)
	case f.maxPixels == 0:
		f.maxPixels = DefaultMaxPixels
	}
	switch {
	case f.timeout < 0:
		return nil, fmt.Errorf("check Timeout %s: want a positive duration", cfg.Timeout)
	case f.timeout == 0:
		f.timeout = DefaultTimeout
	}
	if f.userAgent == "" {
		f.userAgent = DefaultUserAgent
	}
	if f.allowed, err = parseAllowedHosts(cfg.AllowedHosts); err != nil {
		return nil, err
	}
	f.client = &http.Client{Transport: f.guardTransport(cfg.Transport), CheckRedirect: f.checkRedirect}
	return f, nil
}

// checkRedirect follows at most maxRedirects hops, refuses a hop to a
// blocked address (see checkURL), and removes
// Authorization from every hop that leaves Label Studio's origin. Go's own
// rule keeps the header when only the port changes, which would send a
// Label Studio token to, say, MinIO on the same host.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if r := f.checkURL(req.URL); r != nil {
		r.hop = safeName(req.URL)
		return r
	}
	if f.ls == nil || !sameOrigin(req.URL, f.ls) {
		req.Header.Del("Authorization")
	}
	return nil
}

// Fetch reads the image at loc and decodes it, applying its EXIF
// orientation: the result has the displayed size. project is passed to
// Credentials. A Path under LocalFilesRoot is read when the file exists
// there; otherwise URL is fetched. Errors are *Error, except an error of
// Credentials, which is wrapped as it is (with its own HTTPStatus, if any).
func (f *Fetcher) Fetch(ctx context.Context, loc Location, project string) (image.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	name := loc.String()
	start := time.Now()
	status := "refused"
	data, ctype, err := f.download(ctx, loc, name, project, &status)
	if f.observe != nil {
		f.observe(status, int64(len(data)), time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	return decode(data, f.maxPixels, name, ctype)
}

// download reads loc's bytes, setting *status as Config.Observe says.
func (f *Fetcher) download(ctx context.Context, loc Location, name, project string, status *string) ([]byte, string, error) {
	if loc.Path != "" && f.localRoot != "" {
		data, ok, err := f.readLocal(loc.Path, name)
		if err != nil {
			*status = "local"
			return nil, "", err
		}
		if ok {
			*status = "local"
			return data, "", nil
		}
	}
	if loc.URL == "" {
		if loc.Path != "" {
			return nil, "", &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("image not found at %s: it is not under LOCAL_FILES_DOCUMENT_ROOT, and LABEL_STUDIO_URL is not set", name)}
		}
		return nil, "", &Error{Status: http.StatusBadRequest, Msg: "the image location is empty"}
	}
	return f.get(ctx, loc.URL, name, project, status)
}

// readLocal reads rel under the document root. It reports false, and no
// error, when the file is not there (or only reachable through a symbolic
// link that leaves the root), so that the caller falls back to HTTP, where
// Label Studio decides.
func (f *Fetcher) readLocal(rel, name string) ([]byte, bool, error) {
	root, err := os.OpenRoot(f.localRoot)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil // not mounted here
		}
		return nil, false, &Error{Status: http.StatusInternalServerError, Msg: "open LOCAL_FILES_DOCUMENT_ROOT", Err: err}
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO must not hang; it is then refused as not
	// a regular file. It changes nothing for regular files.
	file, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, false, &Error{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("read %s under LOCAL_FILES_DOCUMENT_ROOT", name), Err: fs.ErrPermission}
		}
		// Missing, or an escape that os.Root refuses: let Label Studio say.
		return nil, false, nil
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, false, nil
	}
	if st.Size() > f.maxBytes {
		return nil, false, f.tooBig(name)
	}
	data, err := readCapped(file, st.Size(), f.maxBytes)
	if err != nil {
		if errors.Is(err, errTooBig) {
			return nil, false, f.tooBig(name)
		}
		return nil, false, &Error{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("read %s under LOCAL_FILES_DOCUMENT_ROOT", name), Err: errors.Unwrap(err)}
	}
	return data, true, nil
}

func (f *Fetcher) tooBig(name string) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("image at %s is larger than the limit of %d bytes (MAX_IMAGE_BYTES)", name, f.maxBytes)}
}

var errTooBig = errors.New("over the size limit")

// readCapped reads r to the end into one buffer sized from hint, failing
// with errTooBig past max bytes.
func readCapped(r io.Reader, hint, max int64) ([]byte, error) {
	var buf bytes.Buffer
	if hint > 0 && hint <= max {
		buf.Grow(int(hint) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, max+1)); err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	if int64(buf.Len()) > max {
		return nil, errTooBig
	}
	return buf.Bytes(), nil
}

// get downloads rawURL. Requests to Label Studio's origin carry the
// credential; a 401 or 403 from Label Studio is reported to Credentials and
// retried once with a fresh header.
func (f *Fetcher) get(ctx context.Context, rawURL, name, project string, status *string) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", badRef("image URL %s is not an http(s) URL", quoteShort(safeURL(rawURL)))
	}
	if r := f.checkURL(u); r != nil {
		return nil, "", r.asError(name)
	}
	toLS := f.ls != nil && sameOrigin(u, f.ls)
	*status = "error"
	auth := ""
	if toLS && f.creds != nil {
		if auth, err = f.creds.Authorization(ctx, project); err != nil {
			return nil, "", fmt.Errorf("get Label Studio credential for %s: %w", name, err)
		}
	}
	resp, err := f.do(ctx, u, auth)
	if err != nil {
		return nil, "", transportError(err, "fetch", name, f.timeout)
	}
	if auth != "" && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && sameOrigin(resp.Request.URL, f.ls) {
		f.creds.Rejected(project, auth)
		fresh, err := f.creds.Authorization(ctx, project)
		if err != nil {
			drain(resp)
			return nil, "", fmt.Errorf("get Label Studio credential for %s after a %d: %w", name, resp.StatusCode, err)
		}
		if fresh != "" && fresh != auth {
			drain(resp)
			auth = fresh
			if resp, err = f.do(ctx, u, auth); err != nil {
				return nil, "", transportError(err, "fetch", name, f.timeout)
			}
		}
	}
	defer resp.Body.Close()
	*status = strconv.Itoa(resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", f.statusError(resp, name, auth != "")
	}
	if resp.ContentLength > f.maxBytes {
		return nil, "", f.tooBig(name)
	}
	data, err := readCapped(resp.Body, resp.ContentLength, f.maxBytes)
	if err != nil {
		if errors.Is(err, errTooBig) {
			return nil, "", f.tooBig(name)
		}
		return nil, "", transportError(errors.Unwrap(err), "read", name, f.timeout)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// do sends one GET.
func (f *Fetcher) do(ctx context.Context, u *url.URL, auth string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", f.userAgent)
	req.Header.Set("Accept", "image/*, */*;q=0.5")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return f.client.Do(req)
}

// drain discards a little of an unwanted body, so that the connection can
// be reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
}

// statusError maps a non-2xx answer. The message names the final hop when
// a redirect left Label Studio.
func (f *Fetcher) statusError(resp *http.Response, name string, hadAuth bool) *Error {
	final := resp.Request.URL
	fromLS := f.ls != nil && sameOrigin(final, f.ls)
	where := name
	if !fromLS && safeName(final) != name {
		where = name + " (redirected to " + safeName(final) + ")"
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusNotFound:
		return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("image not found at %s (404)", where)}
	case fromLS && code == http.StatusUnauthorized && hadAuth:
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("Label Studio refused the API token (%s) for %s: legacy tokens may be disabled for the organization (the default since Label Studio 1.17); use a personal access token in LABEL_STUDIO_API_KEY", resp.Status, where)}
	case fromLS && code == http.StatusUnauthorized:
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("Label Studio asked for an API token (%s) for %s: set LABEL_STUDIO_API_KEY to a personal access token", resp.Status, where)}
	case fromLS && code == http.StatusForbidden:
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("Label Studio refused access (%s) to %s: the token's user may not see this project, API tokens may be disabled for the organization, or local file serving is off (LOCAL_FILES_SERVING_ENABLED)", resp.Status, where)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		hint := "a presigned URL may have expired, or the storage needs credentials"
		if f.ls != nil {
			hint = fmt.Sprintf("no Label Studio token is sent there, because its origin differs from LABEL_STUDIO_URL's (%s); if it is Label Studio, give both the same scheme, host and port; otherwise %s", f.ls.Scheme+"://"+f.ls.Host, hint)
		}
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s refused access (%s) to %s: %s", final.Host, resp.Status, where, hint)}
	case fromLS && code == http.StatusInternalServerError && strings.HasPrefix(strings.TrimPrefix(final.Path, f.subPath), "/data/upload/"):
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("Label Studio answered %s for %s: it does so for an upload it does not know, check the path", resp.Status, where)}
	case code >= 300 && code <= 399:
		return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("fetch %s: unfollowed redirect (%s)", where, resp.Status)}
	}
	origin := "the image server"
	if fromLS {
		origin = "Label Studio"
	}
	return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s answered %s for %s", origin, resp.Status, where)}
}
