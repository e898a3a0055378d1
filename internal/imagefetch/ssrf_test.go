package imagefetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// trap is an image server that every dial lands on, whatever address the
// transport asks for, so that a destination that should have been refused
// shows up as an accepted connection (and a successful fetch).
type trap struct {
	*httptest.Server
	accepts atomic.Int64
	mu      sync.Mutex
	dialed  []string // addresses the transport dialed, after the guard
}

// newTrap starts a trap that serves a PNG, or h when it is not nil.
func newTrap(t *testing.T, h http.Handler) *trap {
	t.Helper()
	png := encodePNG(t, markedImage(20, 20))
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write(png)
		})
	}
	tp := &trap{}
	tp.Server = httptest.NewUnstartedServer(h)
	tp.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tp.accepts.Add(1)
		}
	}
	tp.Start()
	t.Cleanup(tp.Close)
	return tp
}

// transport dials the trap for every address except those in direct,
// which are dialed as they are. Keep-alives are off, so that each fetch
// that gets through is one accepted connection.
func (tp *trap) transport(direct ...string) *http.Transport {
	return &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tp.mu.Lock()
			tp.dialed = append(tp.dialed, addr)
			tp.mu.Unlock()
			for _, d := range direct {
				if addr == d {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}
			}
			return (&net.Dialer{}).DialContext(ctx, "tcp", tp.Listener.Addr().String())
		},
	}
}

func (tp *trap) lastDialed() string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.dialed) == 0 {
		return ""
	}
	return tp.dialed[len(tp.dialed)-1]
}

// fakeDNS answers from a table, like a resolver an attacker controls.
func fakeDNS(table map[string][]string) func(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range table[strings.ToLower(host)] {
			out = append(out, netip.MustParseAddr(s))
		}
		if out == nil {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return out, nil
	}
}

var testDNS = map[string][]string{
	"loop.test":    {"127.0.0.2"},
	"meta.test":    {"169.254.169.254"},
	"ten.test":     {"10.0.0.1"},
	"v6ll.test":    {"fe80::1"},
	"ula.test":     {"fd00::1"},
	"cgnat.test":   {"100.64.1.1"},
	"zero.test":    {"0.0.0.0"},
	"v6lo.test":    {"::1"},
	"mapped.test":  {"::ffff:10.1.1.1"},
	"mixed.test":   {"203.0.113.7", "127.0.0.1"}, // one public, one loopback answer
	"public.test":  {"203.0.113.7"},
	"public6.test": {"2001:db8::7"},
}

// guardedFetcher is a Fetcher whose every dial lands on tp and whose host
// names resolve through testDNS.
func guardedFetcher(t *testing.T, tp *trap, cfg Config, direct ...string) *Fetcher {
	t.Helper()
	cfg.Transport = tp.transport(direct...)
	f := newFetcher(t, cfg)
	if f.guard == nil {
		t.Fatal("guard: got nil for an *http.Transport, want the dial check installed")
	}
	f.guard.lookup = fakeDNS(testDNS)
	return f
}

func TestSSRFBlockedDestinations(t *testing.T) {
	tests := []struct {
		url     string
		blocked bool
		want    []string // in the message
	}{
		{"http://127.0.0.1/a.png", true, []string{"127.0.0.1 is a loopback address"}},
		{"http://127.255.255.254:8080/a.png", true, []string{"loopback"}},
		{"http://[::1]:8080/a.png", true, []string{"::1 is a loopback address"}},
		{"http://169.254.169.254/latest/meta-data/", true, []string{"169.254.169.254 is a link-local address"}},
		{"http://[fe80::1%25eth0]/a.png", true, []string{"link-local"}},
		{"http://10.0.0.1/a.png", true, []string{"10.0.0.1 is a private address"}},
		{"http://172.16.0.1/a.png", true, []string{"private"}},
		{"http://172.31.255.255/a.png", true, []string{"private"}},
		{"http://192.168.1.1/a.png", true, []string{"private"}},
		{"http://[fc00::1]/a.png", true, []string{"private"}},
		{"http://[fdff:ffff::1]/a.png", true, []string{"private"}},
		{"http://0.0.0.0:8080/a.png", true, []string{"unspecified"}},
		{"http://0.1.2.3/a.png", true, []string{"unspecified"}},
		{"http://[::]/a.png", true, []string{"unspecified"}},
		{"http://100.64.0.1/a.png", true, []string{"carrier-grade NAT"}},
		{"http://100.127.255.255/a.png", true, []string{"carrier-grade NAT"}},
		{"http://[::ffff:127.0.0.1]/a.png", true, []string{"::ffff:127.0.0.1 is a loopback address"}},
		{"http://[::ffff:a9fe:a9fe]/a.png", true, []string{"link-local address (169.254.169.254)"}},
		{"http://2130706433/a.png", true, []string{"2130706433 is a loopback address (127.0.0.1)"}},
		{"http://0177.0.0.1/a.png", true, []string{"loopback address (127.0.0.1)"}},
		{"http://0x7f.1/a.png", true, []string{"loopback address (127.0.0.1)"}},
		{"http://0xA9FEA9FE/a.png", true, []string{"link-local address (169.254.169.254)"}},
		{"http://127.0.0.1./a.png", true, []string{"loopback"}},
		{"https://10.0.0.1/a.png", true, []string{"private"}},
		// Names, checked when dialing on every address they resolve to.
		{"http://loop.test/a.png", true, []string{"loop.test resolves to a loopback address (127.0.0.2)"}},
		{"http://META.test/a.png", true, []string{"META.test resolves to a link-local address (169.254.169.254)"}},
		{"http://ten.test/a.png", true, []string{"private address (10.0.0.1)"}},
		{"http://v6ll.test/a.png", true, []string{"link-local address (fe80::1)"}},
		{"http://ula.test/a.png", true, []string{"private address (fd00::1)"}},
		{"http://cgnat.test/a.png", true, []string{"carrier-grade NAT"}},
		{"http://zero.test/a.png", true, []string{"unspecified"}},
		{"http://v6lo.test/a.png", true, []string{"loopback address (::1)"}},
		{"http://mapped.test/a.png", true, []string{"private address (10.1.1.1)"}},
		{"http://mixed.test/a.png", true, []string{"loopback address (127.0.0.1)"}},
		// Just outside the ranges: fetched.
		{"http://172.32.0.1/a.png", false, nil},
		{"http://172.15.255.255/a.png", false, nil},
		{"http://100.128.0.1/a.png", false, nil},
		{"http://100.63.255.255/a.png", false, nil},
		{"http://192.169.0.1/a.png", false, nil},
		{"http://1.0.0.1/a.png", false, nil},
		{"http://[2001:db8::1]:8080/a.png", false, nil},
		{"http://[fe00::1]/a.png", false, nil},
		{"http://public.test/a.png", false, nil},
		{"http://public6.test/a.png", false, nil},
	}
	tp := newTrap(t, nil)
	f := guardedFetcher(t, tp, Config{LabelStudio: mustURL(t, "http://ls.example:8080")})
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			before := tp.accepts.Load()
			ref := tt.url + "?X-Amz-Signature=topsecret"
			if !tt.blocked {
				fetchOK(t, f, ref)
				if got := tp.accepts.Load() - before; got != 1 {
					t.Errorf("connections: got %d, want 1", got)
				}
				return
			}
			fe := fetchErr(t, f, ref)
			if got := tp.accepts.Load() - before; got != 0 {
				t.Errorf("connections: got %d, want 0", got)
			}
			if fe.Status != http.StatusForbidden {
				t.Errorf("status: got %d, want 403", fe.Status)
			}
			want := append([]string{"refusing to fetch " + safeURL(tt.url), "add the host to ALLOWED_IMAGE_HOSTS"}, tt.want...)
			for _, w := range want {
				if !strings.Contains(fe.Error(), w) {
					t.Errorf("message: got %q, want it to contain %q", fe.Error(), w)
				}
			}
			if strings.Contains(fe.Error(), "topsecret") {
				t.Errorf("message %q carries the query string", fe.Error())
			}
		})
	}
	t.Run("a name is dialed at the address that was checked", func(t *testing.T) {
		fetchOK(t, f, "http://public.test:8080/a.png")
		if got := tp.lastDialed(); got != "203.0.113.7:8080" {
			t.Errorf("dialed: got %q, want 203.0.113.7:8080", got)
		}
	})
}

// TestSSRFDialCheck calls the guarded dialer directly, without the URL
// check in front of it.
func TestSSRFDialCheck(t *testing.T) {
	tp := newTrap(t, nil)
	f := guardedFetcher(t, tp, Config{AllowedHosts: []string{"allowed.test"}})
	dial := f.client.Transport.(*http.Transport).DialContext
	for _, addr := range []string{"2130706433:80", "0x7f.1:80", "[::ffff:127.0.0.1]:80", "169.254.169.254:80", "localhost:80", "meta.test:443"} {
		t.Run(addr, func(t *testing.T) {
			if addr == "localhost:80" {
				f.guard.lookup = net.DefaultResolver.LookupNetIP
				defer func() { f.guard.lookup = fakeDNS(testDNS) }()
			}
			conn, err := dial(t.Context(), "tcp", addr)
			if err == nil {
				conn.Close()
				t.Fatalf("dial %s: got a connection, want a refusal", addr)
			}
			var r *refusal
			if !errors.As(err, &r) {
				t.Errorf("dial %s: got %v, want a *refusal", addr, err)
			}
		})
	}
	if n := tp.accepts.Load(); n != 0 {
		t.Errorf("connections: got %d, want 0", n)
	}
	// An allowed host is dialed as named, without resolving it here.
	conn, err := dial(t.Context(), "tcp", "ALLOWED.test:80")
	if err != nil {
		t.Fatalf("dial allowed host: %v", err)
	}
	conn.Close()
	if got := tp.lastDialed(); got != "ALLOWED.test:80" {
		t.Errorf("dialed: got %q, want ALLOWED.test:80", got)
	}
}

func TestSSRFRedirects(t *testing.T) {
	ls := newFakeLS(t, "", "Token "+legacyKey)
	lsAddr := mustURL(t, ls.URL).Host
	ls.handle("/data/upload/1/meta.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam?token=topsecret", http.StatusFound)
	})
	ls.handle("/data/upload/1/metaname.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://meta.test/latest/meta-data/?token=topsecret", http.StatusFound)
	})
	ls.handle("/data/upload/1/twohops.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://public.test/hop?to=ten", http.StatusFound)
	})
	ls.handle("/data/upload/1/public.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://public.test/img.png?X-Amz-Signature=s", http.StatusFound)
	})
	png := encodePNG(t, markedImage(20, 20))
	// The trap redirects /hop to a private address.
	tp := newTrap(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "http://10.0.0.1/img.png", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
	}))
	f := guardedFetcher(t, tp, Config{LabelStudio: ls.base(t), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}}, lsAddr)

	tests := []struct {
		ref         string
		wantAccepts int64 // connections to the trap
		want        []string
	}{
		{"/data/upload/1/meta.jpg", 0, []string{"refusing to fetch /data/upload/1/meta.jpg: it redirects to http://169.254.169.254/latest/meta-data/iam, and 169.254.169.254 is a link-local address"}},
		{"/data/upload/1/metaname.jpg", 0, []string{"refusing to fetch /data/upload/1/metaname.jpg: meta.test resolves to a link-local address (169.254.169.254)"}},
		{"/data/upload/1/twohops.jpg", 1, []string{"it redirects to http://10.0.0.1/img.png, and 10.0.0.1 is a private address"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			before := tp.accepts.Load()
			fe := fetchErr(t, f, tt.ref)
			if got := tp.accepts.Load() - before; got != tt.wantAccepts {
				t.Errorf("connections to the trap: got %d, want %d", got, tt.wantAccepts)
			}
			if fe.Status != http.StatusForbidden {
				t.Errorf("status: got %d, want 403 (%v)", fe.Status, fe)
			}
			for _, w := range tt.want {
				if !strings.Contains(fe.Error(), w) {
					t.Errorf("message: got %q, want it to contain %q", fe.Error(), w)
				}
			}
			if strings.Contains(fe.Error(), "topsecret") || strings.Contains(fe.Error(), "?") {
				t.Errorf("message %q carries a query string", fe.Error())
			}
		})
	}
	t.Run("a redirect to a public host is followed", func(t *testing.T) {
		fetchOK(t, f, "/data/upload/1/public.jpg")
	})
}

func TestSSRFRealDNSAndExemptions(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	ls := newFakeLS(t, "", "Token "+legacyKey)
	ls.serveBytes("/data/upload/1/a.jpg", "image/jpeg", jpg)
	ls.handleOpen("/pub/a.jpg", func(w http.ResponseWriter, r *http.Request) { w.Write(jpg) })
	lsURL := mustURL(t, ls.URL)
	viaLocalhost := "http://localhost:" + lsURL.Port() + "/pub/a.jpg?sig=topsecret"
	creds := &fakeCreds{headers: []string{"Token " + legacyKey}}

	// The fake Label Studio listens on 127.0.0.1. Its origin is allowed;
	// the same server under another name, or with Label Studio
	// configured elsewhere, needs ALLOWED_IMAGE_HOSTS.
	tests := []struct {
		name    string
		ls      string
		allowed []string
		ref     string
		wantOK  bool
	}{
		{"Label Studio's origin on loopback", ls.URL, nil, ls.URL + "/data/upload/1/a.jpg", true},
		{"Label Studio path", ls.URL, nil, "/data/upload/1/a.jpg", true},
		{"localhost is not Label Studio's origin", ls.URL, nil, viaLocalhost, false},
		{"no Label Studio", "", nil, viaLocalhost, false},
		{"allowed host, any port", ls.URL, []string{"LOCALHOST"}, viaLocalhost, true},
		{"allowed host:port", ls.URL, []string{"other.example", "localhost:" + lsURL.Port()}, viaLocalhost, true},
		{"allowed host, other port", ls.URL, []string{"localhost:1"}, viaLocalhost, false},
		{"allowed address", "http://ls.example", []string{lsURL.Hostname()}, ls.URL + "/pub/a.jpg", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Credentials: creds, AllowedHosts: tt.allowed}
			if tt.ls != "" {
				cfg.LabelStudio = mustURL(t, tt.ls)
			}
			f := newFetcher(t, cfg)
			before := len(ls.rec.all())
			if tt.wantOK {
				fetchOK(t, f, tt.ref)
				if got := len(ls.rec.all()) - before; got != 1 {
					t.Errorf("requests: got %d, want 1", got)
				}
				return
			}
			fe := fetchErr(t, f, tt.ref)
			if fe.Status != http.StatusForbidden || !strings.Contains(fe.Error(), "localhost resolves to a loopback address") {
				t.Errorf("got %d %q, want 403 naming localhost and loopback", fe.Status, fe)
			}
			if strings.Contains(fe.Error(), "topsecret") {
				t.Errorf("message %q carries the query string", fe.Error())
			}
			if got := len(ls.rec.all()) - before; got != 0 {
				t.Errorf("requests: got %d, want 0", got)
			}
		})
	}
}

// roundTripFunc is a RoundTripper that is not an *http.Transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSSRFOtherRoundTripperGetsURLChecks(t *testing.T) {
	var calls atomic.Int64
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("unreachable")
	})
	f := newFetcher(t, Config{Transport: rt})
	if f.guard != nil {
		t.Errorf("guard: got one for a %T, want none", rt)
	}
	for _, ref := range []string{"http://169.254.169.254/", "http://[::1]/", "http://2130706433/"} {
		if fe := fetchErr(t, f, ref); fe.Status != http.StatusForbidden {
			t.Errorf("%s: status got %d, want 403", ref, fe.Status)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("round trips: got %d, want 0", n)
	}
}

func TestSSRFProxy(t *testing.T) {
	tp := newTrap(t, nil)
	tr := tp.transport(tp.Listener.Addr().String())
	// The proxy is on loopback: the transport may dial it, and the image's
	// host is left to the proxy.
	tr.Proxy = http.ProxyURL(mustURL(t, tp.URL))
	f := newFetcher(t, Config{Transport: tr})
	f.guard.lookup = fakeDNS(nil) // the backend must not resolve the target
	fetchOK(t, f, "http://public.test/a.png")
	if n := tp.accepts.Load(); n != 1 {
		t.Errorf("connections to the proxy: got %d, want 1", n)
	}
	if fe := fetchErr(t, f, "http://169.254.169.254/a.png"); fe.Status != http.StatusForbidden {
		t.Errorf("literal link-local through the proxy: got %d, want 403", fe.Status)
	}
	if n := tp.accepts.Load(); n != 1 {
		t.Errorf("connections after the refusal: got %d, want 1", n)
	}
}

func TestBlockedAddr(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" when allowed
	}{
		{"127.0.0.1", "a loopback address"},
		{"127.255.255.255", "a loopback address"},
		{"::1", "a loopback address"},
		{"::ffff:127.0.0.1", "a loopback address"},
		{"169.254.0.1", "a link-local address"},
		{"169.254.169.254", "a link-local address"},
		{"::ffff:169.254.169.254", "a link-local address"},
		{"fe80::1", "a link-local address"},
		{"fe80::1%eth0", "a link-local address"},
		{"febf::1", "a link-local address"},
		{"ff02::1", "a link-local address"},
		{"10.255.255.255", "a private address"},
		{"172.16.0.0", "a private address"},
		{"172.31.0.1", "a private address"},
		{"192.168.0.0", "a private address"},
		{"::ffff:192.168.0.1", "a private address"},
		{"fc00::", "a private address"},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "a private address"},
		{"0.0.0.0", "an unspecified address"},
		{"::", "an unspecified address"},
		{"0.255.255.255", "an unspecified (\"this network\") address"},
		{"100.64.0.0", "a carrier-grade NAT (shared) address"},
		{"100.127.255.255", "a carrier-grade NAT (shared) address"},
		{"::ffff:100.64.0.1", "a carrier-grade NAT (shared) address"},
		{"1.1.1.1", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"169.253.255.255", ""},
		{"169.255.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.167.255.255", ""},
		{"192.169.0.0", ""},
		{"2001:db8::1", ""},
		{"fec0::1", ""},
		{"fbff::1", ""},
		{"fe00::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, blocked := blockedAddr(netip.MustParseAddr(tt.addr))
			if got != tt.want || blocked != (tt.want != "") {
				t.Errorf("blockedAddr(%s): got %q %v, want %q %v", tt.addr, got, blocked, tt.want, tt.want != "")
			}
		})
	}
	if _, blocked := blockedAddr(netip.Addr{}); !blocked {
		t.Error("blockedAddr(zero Addr): got allowed, want blocked")
	}
}

func TestParseHostAddr(t *testing.T) {
	tests := []struct {
		host string
		want string // "" when not an address
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"10.0x10000", "10.1.0.0"},
		{"169.254.43518", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"127.0.0.1.", "127.0.0.1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"4294967296", ""},
		{"256.0.0.1", ""},
		{"1.2.3.4.5", ""},
		{"1.2.65536", ""},
		{"08.0.0.1", ""},
		{"0x1g", ""},
		{"1..2", ""},
		{"+1", ""},
		{"-1", ""},
		{"example.com", ""},
		{"1e3", ""},
		{"", ""},
		{".", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			ip, ok := parseHostAddr(tt.host)
			got := ""
			if ok {
				got = ip.String()
			}
			if got != tt.want {
				t.Errorf("parseHostAddr(%q): got %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestParseAllowedHosts(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr bool
	}{
		{[]string{"Images.Example.com", " minio:9000 ", ""}, []string{"images.example.com", "minio:9000"}, false},
		{[]string{"::1", "[::1]", "[0:0::1]:8080", "10.0.0.5"}, []string{"::1", "[::1]:8080", "10.0.0.5"}, false},
		{[]string{"http://minio:9000/"}, []string{"minio:9000"}, false},
		{[]string{"minio:0"}, nil, true},
		{[]string{"minio:http"}, nil, true},
		{[]string{"host/path"}, nil, true},
		{[]string{"user@host"}, nil, true},
		{[]string{":9000"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			got, err := parseAllowedHosts(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "ALLOWED_IMAGE_HOSTS") {
					t.Errorf("error %q: want it to name ALLOWED_IMAGE_HOSTS", err)
				}
				return
			}
			want := map[string]bool{}
			for _, w := range tt.want {
				want[w] = true
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	if _, err := New(Config{AllowedHosts: []string{"a b"}}); err == nil {
		t.Error("New with a bad ALLOWED_IMAGE_HOSTS entry: got no error, want one")
	}
}

// refBlocked is blockedAddr written against net.IP, to fuzz against.
func refBlocked(ip net.IP) bool {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	for _, cidr := range []string{"0.0.0.0/8", "100.64.0.0/10"} {
		_, n, _ := net.ParseCIDR(cidr)
		if n.Contains(ip) {
			return true
		}
	}
	return ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsPrivate()
}

func FuzzBlockedAddr(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1%eth0", "10.0.0.1",
		"172.16.0.1", "192.168.1.1", "fc00::1", "0.0.0.0", "::", "100.64.0.1", "8.8.8.8",
		"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "4294967296", "1.2.3.4.5", "0x", "08", "[::1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if std, err := netip.ParseAddr(s); err == nil {
			if got, ok := parseHostAddr(s); !ok || got != std {
				t.Fatalf("parseHostAddr(%q): got %v %v, want %v", s, got, ok, std)
			}
		}
		if ip, ok := parseInetAton(s); ok {
			if !ip.Is4() {
				t.Fatalf("parseInetAton(%q): got %v, want an IPv4 address", s, ip)
			}
			if strings.Trim(s, "0123456789abcdefABCDEFxX.") != "" {
				t.Fatalf("parseInetAton(%q): accepted a non-numeric host", s)
			}
		}
		ip, ok := parseHostAddr(s)
		if !ok {
			return
		}
		_, blocked := blockedAddr(ip)
		if want := refBlocked(net.IP(ip.AsSlice())); blocked != want {
			t.Fatalf("blockedAddr(%v): got %v, want %v", ip, blocked, want)
		}
		if ip.Is4() {
			if _, m := blockedAddr(netip.AddrFrom16(ip.As16())); m != blocked {
				t.Fatalf("blockedAddr(mapped %v): got %v, want %v", ip, m, blocked)
			}
		}
		// A URL with this host is refused before any request when blocked.
		u := &url.URL{Scheme: "http", Host: s}
		if ip.Is6() {
			u.Host = "[" + strings.ReplaceAll(s, "%", "%25") + "]"
		}
		if pu, err := url.Parse(u.String()); err == nil && pu.Hostname() == s {
			fx := &Fetcher{}
			if r := fx.checkURL(pu); (r != nil) != blocked {
				t.Fatalf("checkURL(%s): got refusal %v, want %v", pu, r, blocked)
			}
		}
	})
}
