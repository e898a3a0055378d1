package imagefetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// This file guards against server-side request forgery: a task, or a
// redirect, that points the backend at a service only it can reach (the
// cloud metadata endpoint at 169.254.169.254, a database on localhost, an
// admin page on the private network). Destinations in blocked ranges are
// refused unless they are Label Studio's origin or listed in
// Config.AllowedHosts. The check runs on the URL (literal addresses, on
// the first request and on every redirect hop) and again when dialing, on
// every address the host name resolves to; the connection then goes to
// the address that was checked, so a DNS answer that changes between the
// check and the dial (DNS rebinding) cannot get through.

// blockedRanges are the IPv4 ranges that blockedAddr refuses besides those
// netip classifies itself.
var blockedRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (\"this network\") address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
}

// blockedAddr reports whether ip is in a range the backend must not fetch
// from on a task's say, and which: loopback, link-local, private, CGNAT,
// unspecified, or an IPv4-mapped IPv6 form of one of these.
func blockedAddr(ip netip.Addr) (reason string, blocked bool) {
	if !ip.IsValid() {
		return "an invalid address", true
	}
	ip = ip.WithZone("").Unmap()
	switch {
	case ip.IsUnspecified():
		return "an unspecified address", true
	case ip.IsLoopback():
		return "a loopback address", true
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "a link-local address", true
	case ip.IsPrivate():
		return "a private address", true
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.reason, true
		}
	}
	return "", false
}

// parseHostAddr parses a URL host name (without brackets or port) as an IP
// address: the standard forms, and the forms that inet_aton, and so the C
// resolver, also accepts ("2130706433", "0x7f.1", "0177.0.0.1").
func parseHostAddr(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, true
	}
	return parseInetAton(host)
}

// parseInetAton parses the 1- to 4-part numeric IPv4 forms of inet_aton(3),
// each part decimal, octal (leading 0) or hexadecimal (leading 0x); the
// last part fills the remaining bytes. A trailing dot is allowed, as a
// fully qualified name.
func parseInetAton(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case p == "0x" || p == "0X":
			base, p = 16, "0" // inet_aton takes a bare 0x as 0
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" || p[0] == '+' || p[0] == '-' {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// refusal is the cause of a refused fetch. It becomes a 403 *Error in
// transportError, which knows the image's name.
type refusal struct {
	hop    string     // the redirect hop refused, "" for the first request
	host   string     // host name as the URL gives it
	ip     netip.Addr // the blocked address
	reason string     // "a loopback address"
	named  bool       // host is a name that resolved to ip, not a literal
}

func (r *refusal) Error() string {
	var b strings.Builder
	if r.hop != "" {
		fmt.Fprintf(&b, "it redirects to %s, and ", r.hop)
	}
	if r.named {
		fmt.Fprintf(&b, "%s resolves to %s (%s)", r.host, r.reason, r.ip)
	} else {
		fmt.Fprintf(&b, "%s is %s", r.host, r.reason)
		if s := r.ip.Unmap().String(); s != r.host && r.ip.String() != r.host {
			fmt.Fprintf(&b, " (%s)", s)
		}
	}
	b.WriteString("; add the host to ALLOWED_IMAGE_HOSTS if it is an image server you trust")
	return b.String()
}

// asError is the *Error for fetching name.
func (r *refusal) asError(name string) *Error {
	return &Error{Status: http.StatusForbidden, Msg: "refusing to fetch " + name + ": " + r.Error()}
}

// hostKey normalizes a host name for comparison: lower case, no brackets,
// IP addresses in their canonical form.
func hostKey(host string) string {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.String()
	}
	return host
}

// parseAllowedHosts parses Config.AllowedHosts: "host" allows any port,
// "host:port" ([v6]:port for IPv6) that port only. A scheme, if an
// operator wrote one, is ignored.
func parseAllowedHosts(entries []string) (map[string]bool, error) {
	allowed := map[string]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		hp := e
		if _, rest, ok := strings.Cut(hp, "://"); ok {
			hp = strings.TrimSuffix(rest, "/")
		}
		if hp == "" || strings.ContainsAny(hp, "/?#@ \t") {
			return nil, fmt.Errorf("check ALLOWED_IMAGE_HOSTS entry %q: want a host or host:port", e)
		}
		host, p, err := net.SplitHostPort(hp)
		if err != nil {
			allowed[hostKey(hp)] = true // no port, or a bare IPv6 address
			continue
		}
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 || host == "" {
			return nil, fmt.Errorf("check ALLOWED_IMAGE_HOSTS entry %q: want a host or host:port", e)
		}
		allowed[net.JoinHostPort(hostKey(host), p)] = true
	}
	return allowed, nil
}

// exemptHost reports whether host:port (port explicit) is Label Studio's,
// or allowed by Config.AllowedHosts.
func (f *Fetcher) exemptHost(host, p string) bool {
	h := hostKey(host)
	if f.ls != nil && h == hostKey(f.ls.Hostname()) && p == port(f.ls) {
		return true
	}
	return f.allowed[h] || f.allowed[net.JoinHostPort(h, p)]
}

// checkURL refuses u when its host is a literal address in a blocked range
// and u is neither on Label Studio's origin nor on an allowed host. Host
// names are checked when dialing.
func (f *Fetcher) checkURL(u *url.URL) *refusal {
	if f.ls != nil && sameOrigin(u, f.ls) || f.exemptHost(u.Hostname(), port(u)) {
		return nil
	}
	ip, ok := parseHostAddr(u.Hostname())
	if !ok {
		return nil
	}
	if reason, blocked := blockedAddr(ip); blocked {
		return &refusal{host: u.Hostname(), ip: ip, reason: reason}
	}
	return nil
}

// dialFunc is the signature of http.Transport.DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// guard checks every address a transport dials.
type guard struct {
	f      *Fetcher
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	mu     sync.Mutex
	proxy  map[string]bool // host:port of proxies the transport chose
}

// noteProxy wraps a Transport.Proxy function so that the guard lets the
// transport dial the proxies it returns: the proxy, not the backend,
// resolves the image's host then, and only the URL check applies.
func (g *guard) noteProxy(proxy func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		p, err := proxy(req)
		if p != nil {
			pp := p.Port()
			if pp == "" {
				switch strings.ToLower(p.Scheme) {
				case "https":
					pp = "443"
				case "socks5", "socks5h":
					pp = "1080"
				default:
					pp = "80"
				}
			}
			g.mu.Lock()
			g.proxy[net.JoinHostPort(hostKey(p.Hostname()), pp)] = true
			g.mu.Unlock()
		}
		return p, err
	}
}

// wrap returns a dialer that resolves addr's host, refuses it when any of
// its addresses is blocked (unless the host is exempt), and dials the
// checked addresses through next, in order, until one answers.
func (g *guard) wrap(next dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		g.mu.Lock()
		isProxy := g.proxy[net.JoinHostPort(hostKey(host), p)]
		g.mu.Unlock()
		if isProxy || g.f.exemptHost(host, p) {
			return next(ctx, network, addr)
		}
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		var ips []netip.Addr
		if ip, ok := parseHostAddr(host); ok {
			ips = []netip.Addr{ip}
		} else if ips, err = g.lookup(ctx, ipNet, host); err != nil {
			return nil, err
		} else {
			for i := range ips {
				ips[i] = ips[i].Unmap() // the resolver may answer ::ffff:a.b.c.d
			}
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
		for _, ip := range ips {
			if reason, blocked := blockedAddr(ip); blocked {
				_, literal := parseHostAddr(host)
				return nil, &refusal{host: host, ip: ip, reason: reason, named: !literal}
			}
		}
		var errs []error
		for _, ip := range ips {
			conn, err := next(ctx, network, net.JoinHostPort(ip.String(), p))
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// guardTransport returns rt with every dial checked, when rt is an
// *http.Transport (a clone of it, which New owns); any other RoundTripper
// is returned as it is, and only the URL checks apply to it.
func (f *Fetcher) guardTransport(rt http.RoundTripper) http.RoundTripper {
	var tr *http.Transport
	switch t := rt.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return rt
	}
	g := &guard{f: f, lookup: net.DefaultResolver.LookupNetIP, proxy: map[string]bool{}}
	f.guard = g
	if tr.Proxy != nil {
		tr.Proxy = g.noteProxy(tr.Proxy)
	}
	next := tr.DialContext
	if next == nil && tr.Dial != nil { //nolint:staticcheck // honour a legacy Dial
		dial := tr.Dial //nolint:staticcheck
		next = func(_ context.Context, network, addr string) (net.Conn, error) { return dial(network, addr) }
	}
	if next == nil {
		next = (&net.Dialer{}).DialContext
	}
	tr.DialContext = g.wrap(next)
	tr.Dial = nil //nolint:staticcheck
	nextTLS := tr.DialTLSContext
	if nextTLS == nil && tr.DialTLS != nil { //nolint:staticcheck // honour a legacy DialTLS
		dial := tr.DialTLS //nolint:staticcheck
		nextTLS = func(_ context.Context, network, addr string) (net.Conn, error) { return dial(network, addr) }
	}
	if nextTLS != nil {
		// A custom TLS dialer now gets the checked IP address, not the
		// host name: it must take the server name from its tls.Config.
		tr.DialTLSContext = g.wrap(nextTLS)
	}
	tr.DialTLS = nil //nolint:staticcheck
	return tr
}
