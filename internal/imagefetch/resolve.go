package imagefetch

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Location is where an image comes from: an absolute URL, a file under
// Config.LocalFilesRoot, or both (a /data/local-files/ reference is read
// from disk when the file is there, else over HTTP). Build it with Resolve.
type Location struct {
	// URL is the absolute http(s) URL to fetch, or "" when the image can
	// only be read from LocalFilesRoot.
	URL string
	// Path is the image's slash-separated path relative to LocalFilesRoot,
	// tried before URL, or "" when there is none.
	Path string

	id   string // identity from which Key is derived
	name string // how messages name the image: no query string, no userinfo
}

// Key returns a string that identifies the image, for use as a cache key:
// the hex SHA-256 of the image's identity. References that name the same
// image give the same key: "/data/upload/1/a.png" and the absolute Label
// Studio URL of that file, or a cloud URI in two different tasks. The key
// carries no secret and may be logged. It does not include the tenant: a
// cache shared by organizations must add that itself.
func (l Location) Key() string {
	id := l.id
	if id == "" {
		id = "url:" + l.URL + "\x00path:" + l.Path
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// String names the image safely for logs and messages.
func (l Location) String() string {
	switch {
	case l.name != "":
		return l.name
	case l.URL != "":
		return safeURL(l.URL)
	case l.Path != "":
		return localFilesPrefix + "?d=" + l.Path
	}
	return "(no image)"
}

// safeURL returns raw without its userinfo, query and fragment.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return safeName(u)
}

// safeName names u without its userinfo, query and fragment.
func safeName(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return c.String()
}

const localFilesPrefix = "/data/local-files/"

// cloudSchemes are the storage URIs that Label Studio resolves through
// /tasks/<id>/resolve/ (io_storages/{s3,gcs,azure_blob}/models.py).
var cloudSchemes = []string{"s3", "gs", "azure-blob"}

// Resolve maps a task's data value to a Location without any I/O. taskID
// is needed for cloud URIs. The accepted forms are:
//
//   - /data/upload/…, upload/… and /upload/… (files uploaded to Label
//     Studio), and other Label Studio paths under /data/, /storage-data/ and
//     /tasks/; a path that already carries Label Studio's sub-path is not
//     prefixed twice;
//   - /data/local-files/?d=<path>: Path is set when LocalFilesRoot is, and
//     URL when LabelStudio is;
//   - s3://, gs:// and azure-blob:// URIs, fetched through
//     <LS>/tasks/<taskID>/resolve/?fileuri=<base64url(uri)>;
//   - absolute http(s) URLs, as they are (those on Label Studio's origin are
//     treated like the paths above).
//
// Anything else gets an *Error with status 400 that names the problem.
func (f *Fetcher) Resolve(ref string, taskID int64) (Location, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return Location{}, badRef("the image reference is empty")
	}
	if scheme, ok := refScheme(ref); ok {
		lower := strings.ToLower(scheme)
		switch {
		case lower == "http" || lower == "https":
			return f.resolveAbsolute(ref)
		case slices.Contains(cloudSchemes, lower):
			return f.resolveCloud(ref, lower, taskID)
		case lower == "data":
			return Location{}, badRef("the image is a data: URI, which is not supported: import the image into Label Studio")
		}
		return Location{}, badRef("image reference scheme %q is not supported: use http(s), s3, gs, azure-blob or a Label Studio path", lower)
	}
	switch {
	case strings.HasPrefix(ref, "//"):
		return Location{}, badRef("protocol-relative image references (//host/…) are not supported")
	case strings.HasPrefix(ref, "upload/"):
		ref = "/data/" + ref
	case strings.HasPrefix(ref, "/upload/"):
		ref = "/data" + ref
	case !strings.HasPrefix(ref, "/"):
		return Location{}, badRef("image reference %s is neither a URL nor a Label Studio path (/data/upload/…, /data/local-files/?d=…)", quoteShort(ref))
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return Location{}, badRef("image reference %s is not a valid path", quoteShort(ref))
	}
	p := u.Path
	if f.subPath != "" && strings.HasPrefix(p, f.subPath+"/") && isLSRoute(p[len(f.subPath):]) {
		p = p[len(f.subPath):] // already carries the sub-path (FileUpload.url under FORCE_SCRIPT_NAME)
	}
	if !isLSRoute(p) {
		return Location{}, badRef("image reference %s is not a Label Studio media path (/data/upload/…, /data/local-files/?d=…)", quoteShort(u.Path))
	}
	return f.resolveLS(p, u.RawQuery, false)
}

// refScheme returns the URI scheme of ref (RFC 3986 §3.1), if it has one.
func refScheme(ref string) (string, bool) {
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.':
			if i == 0 {
				return "", false
			}
		case c == ':':
			return ref[:i], i > 0
		default:
			return "", false
		}
	}
	return "", false
}

// quoteShort quotes s for a message, cut to a readable length and without
// its query string.
func quoteShort(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?…"
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}

// isLSRoute reports whether p (without the sub-path) is a Label Studio
// route that serves task media.
func isLSRoute(p string) bool {
	return strings.HasPrefix(p, "/data/") || strings.HasPrefix(p, "/storage-data/") || strings.HasPrefix(p, "/tasks/")
}

// hasDotDot reports whether the slash-separated path p has a ".." element.
func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

// resolveLS builds the Location of Label Studio path p (without the
// sub-path) and its raw query. absolute says that the reference was an
// absolute URL on Label Studio's origin, whose URL is kept as given.
func (f *Fetcher) resolveLS(p, rawQuery string, absolute bool) (Location, error) {
	if hasDotDot(p) {
		return Location{}, badRef("image reference %s has a \"..\" path element", quoteShort(p))
	}
	loc := Location{id: "ls:" + p + "?" + rawQuery, name: (&url.URL{Path: p}).EscapedPath()}
	if p == localFilesPrefix || p == strings.TrimSuffix(localFilesPrefix, "/") {
		q, err := url.ParseQuery(rawQuery)
		if err != nil || q.Get("d") == "" {
			return Location{}, badRef("local-files reference %s has no d= parameter", quoteShort(p))
		}
		rel, ok := localRel(q.Get("d"))
		if !ok {
			return Location{}, badRef("local-files path %s escapes the document root", quoteShort(q.Get("d")))
		}
		loc.id = "local-files:" + rel
		loc.name = localFilesPrefix + "?d=" + rel
		if f.localRoot != "" {
			loc.Path = rel
		}
	}
	if f.ls == nil {
		if loc.Path != "" {
			return loc, nil // readable from disk; there is no HTTP fallback
		}
		return Location{}, badRef("image reference %s is a Label Studio path, but LABEL_STUDIO_URL is not set", quoteShort(loc.name))
	}
	if !absolute {
		u := *f.ls
		u.Path = f.subPath + p
		u.RawPath = ""
		u.RawQuery = rawQuery
		u.Fragment = ""
		loc.URL = u.String()
	}
	return loc, nil
}

// localRel maps the d= value of a local-files URL to a path relative to
// the document root the way Label Studio does (posixpath.normpath, then
// lstrip('/')), and reports false when that escapes the root, which
// Label Studio's safe_join refuses too.
func localRel(d string) (string, bool) {
	rel := strings.TrimLeft(path.Clean(d), "/")
	if rel == "" || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
		return "", false
	}
	return rel, true
}

// resolveAbsolute handles an http(s) URL.
func (f *Fetcher) resolveAbsolute(ref string) (Location, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return Location{}, badRef("image URL %s is not valid", quoteShort(ref))
	}
	if u.Host == "" || u.Hostname() == "" {
		return Location{}, badRef("image URL %s has no host", quoteShort(ref))
	}
	u.Fragment = ""
	u.RawFragment = ""
	if f.ls != nil && sameOrigin(u, f.ls) {
		p := u.Path
		if f.subPath != "" && strings.HasPrefix(p, f.subPath+"/") {
			p = p[len(f.subPath):]
		}
		loc, err := f.resolveLS(p, u.RawQuery, true)
		if err != nil {
			return Location{}, err
		}
		loc.URL = u.String()
		return loc, nil
	}
	return Location{URL: u.String(), id: "url:" + u.String(), name: safeName(u)}, nil
}

// resolveCloud handles s3://, gs:// and azure-blob:// URIs
// (io_storages/base_models.py resolve_uri; proxy_api.py).
func (f *Fetcher) resolveCloud(ref, scheme string, taskID int64) (Location, error) {
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return Location{}, badRef("%s URI %s has no bucket", scheme, quoteShort(ref))
	}
	name := safeName(u)
	if taskID <= 0 {
		return Location{}, badRef("%s is resolved by Label Studio through /tasks/<id>/resolve/, which needs the task id", name)
	}
	if f.ls == nil {
		return Location{}, badRef("%s is resolved by Label Studio, but LABEL_STUDIO_URL is not set", name)
	}
	r := *f.ls
	r.Path = f.subPath + "/tasks/" + strconv.FormatInt(taskID, 10) + "/resolve/"
	r.RawPath = ""
	// base64url with padding, as the SDK sends it (encode_presign_fileuri);
	// its alphabet needs no escaping in a query.
	r.RawQuery = "fileuri=" + base64.URLEncoding.EncodeToString([]byte(ref))
	r.Fragment = ""
	return Location{URL: r.String(), id: "cloud:" + ref, name: name}, nil
}

// sameOrigin reports whether a and b have the same scheme, host and port,
// with default ports made explicit (RFC 6454 §4).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
