package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// This file holds the parsers of single values. Each returns the message
// the user sees as its error.

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("want an IP address, got %q", s)
	}
	return a, checkAddr(a, s)
}

// checkAddr refuses address forms that compare unequal to the address
// the kernel and BGP would use.
func checkAddr(a netip.Addr, s string) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("addresses with a zone are not supported, got %q", s)
	case a.Is4In6():
		return fmt.Errorf("write the IPv4-mapped address %q as %s", s, a.Unmap())
	}
	return nil
}

func parseRouterID(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	switch {
	case err != nil:
		return a, err
	case !a.Is4():
		return netip.Addr{}, fmt.Errorf("want an IPv4 address (a BGP router ID has 32 bits), got %q", s)
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("must not be 0.0.0.0")
	}
	return a, nil
}

func parsePeerAddress(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err == nil && (a.IsUnspecified() || a.IsMulticast()) {
		return netip.Addr{}, fmt.Errorf("want a unicast address, got %s", a)
	}
	return a, err
}

func parseNextHop(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err == nil && (!a.Is6() || !a.IsGlobalUnicast()) {
		return netip.Addr{}, fmt.Errorf("want a global unicast IPv6 address, got %q", s)
	}
	return a, err
}

// parseVIP reads a VIP. A VIP is one address, written bare
// ("192.0.2.1") or, since that is how it is announced, as a host prefix
// ("192.0.2.1/32", "2001:db8::1/128"); any other length is an error.
// The result is always the bare address.
func parseVIP(s string) (netip.Addr, error) {
	var a netip.Addr
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("want an IP address, got %q", s)
		}
		if p.Bits() != p.Addr().BitLen() {
			return netip.Addr{}, fmt.Errorf("%s is a prefix, but a VIP is one address (like %s or %s/%d)",
				s, p.Addr(), p.Addr(), p.Addr().BitLen())
		}
		a = p.Addr()
		if err := checkAddr(a, s); err != nil {
			return netip.Addr{}, err
		}
	} else {
		var err error
		if a, err = parseAddr(s); err != nil {
			return netip.Addr{}, err
		}
	}
	if err := checkServiceAddr(a); err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// parsePrefix reads a prefix in its canonical form: 10.0.0.1/24 is refused
// (with a hint) rather than silently masked, since it often is a typo.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want a prefix like 192.0.2.0/24, got %q", s)
	}
	if err := checkAddr(p.Addr(), s); err != nil {
		return netip.Prefix{}, err
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

func parseShutdownGrace(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil && d > maxShutdownGrace {
		return 0, fmt.Errorf("%v is longer than %v", d, maxShutdownGrace)
	}
	return d, err
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`want a duration like "300ms" or "2s", got %q`, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative, got %s", d)
	}
	return d, nil
}

// durationIn returns a parser of durations in lo..hi.
func durationIn(lo, hi time.Duration) func(string) (time.Duration, error) {
	return func(s string) (time.Duration, error) {
		d, err := parseDuration(s)
		switch {
		case err != nil:
			return 0, err
		case d < lo:
			return 0, fmt.Errorf("must be at least %s, got %s", lo, d)
		case d > hi:
			return 0, fmt.Errorf("must be at most %s, got %s", hi, d)
		}
		return d, nil
	}
}

// maxHoldTime is the largest hold time BGP's 16-bit field can carry.
const maxHoldTime = 65535 * time.Second

func parseHoldTime(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	switch {
	case err != nil:
		return 0, err
	case d != 0 && d < 3*time.Second:
		return 0, fmt.Errorf("must be 0 (no keepalives) or at least 3s, got %s", d)
	case d%time.Second != 0:
		return 0, fmt.Errorf("must be whole seconds, got %s", d)
	case d > maxHoldTime:
		return 0, fmt.Errorf("must be at most %s, got %s", maxHoldTime, d)
	}
	return d, nil
}

// parseHostPort reads "host:port" with a numeric port; host may be empty
// (all addresses) only for listeners.
func parseHostPort(s string, needHost bool) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || (needHost && host == "") {
		return "", fmt.Errorf(`want host:port like "127.0.0.1:8080", got %q`, s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("want a port 1..65535 in %q", s)
	}
	return s, nil
}

// parseListen reads an optional listener address; "" means none.
func parseListen(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return parseHostPort(s, false)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// IsName reports whether s is a valid service or pool name; load-balancer
// names follow the same rule.
func IsName(s string) bool { return namePattern.MatchString(s) }

// parseName reads a service or pool name. Names go into API URLs and
// metric labels, so they are restricted to URL-safe characters.
func parseName(s string) (string, error) {
	if !IsName(s) {
		return "", fmt.Errorf("want a name of letters, digits, '_', '.' and '-' that starts with a letter or digit, got %q", s)
	}
	return s, nil
}

// parseInterface applies the kernel's rules for interface names.
func parseInterface(s string) (string, error) {
	if s == "" || s == "." || s == ".." || len(s) > 15 || strings.ContainsAny(s, "/: \t\n\r\x00") {
		return "", fmt.Errorf("want an interface name (at most 15 bytes, no '/', ':' or spaces), got %q", s)
	}
	return s, nil
}

// maxComm is the longest process name the kernel keeps (TASK_COMM_LEN
// less the NUL): /proc/PID/comm of a longer name is cut to this.
const maxComm = 15

// parseProcessName accepts what /proc/PID/comm can hold.
func parseProcessName(s string) (string, error) {
	switch {
	case s == "" || strings.ContainsAny(s, "/\n\x00"):
		return "", fmt.Errorf("want a process name as in /proc/PID/comm (no '/'), got %q", s)
	case len(s) > maxComm:
		return "", fmt.Errorf("the kernel keeps at most %d bytes of a process name (/proc/PID/comm); use %q or a pid_file, got %q", maxComm, s[:maxComm], s)
	}
	return s, nil
}

func parseAbsPath(s string) (string, error) {
	if !filepath.IsAbs(s) {
		return "", fmt.Errorf("want an absolute path, got %q", s)
	}
	return s, nil
}

// maxSocketPath is the room in sockaddr_un.sun_path, less the final NUL.
const maxSocketPath = 107

func parseSocketPath(s string) (string, error) {
	if _, err := parseAbsPath(s); err != nil {
		return "", err
	}
	if len(s) > maxSocketPath {
		return "", fmt.Errorf("a unix socket path has at most %d bytes, got %d", maxSocketPath, len(s))
	}
	return s, nil
}

func parseFamily(s string) (Family, error) {
	if f := Family(s); f == IPv4 || f == IPv6 {
		return f, nil
	}
	return "", fmt.Errorf("want ipv4 or ipv6, got %q", s)
}

func parseBFDAuthType(s string) (BFDAuthType, error) {
	switch t := BFDAuthType(s); t {
	case BFDAuthKeyedMD5, BFDAuthMeticulousKeyedMD5, BFDAuthKeyedSHA1, BFDAuthMeticulousKeyedSHA1:
		return t, nil
	}
	return "", fmt.Errorf("want keyed_sha1, meticulous_keyed_sha1, keyed_md5 or meticulous_keyed_md5, got %q", s)
}

func parseOnDown(s string) (OnDown, error) {
	if o := OnDown(s); o == OnDownWithdraw || o == OnDownDegrade {
		return o, nil
	}
	return "", fmt.Errorf("want withdraw or degrade, got %q", s)
}

// StatusRange is an inclusive range of HTTP status codes, written "204"
// or "200-299" (expect_status here and in API check bodies).
type StatusRange struct{ Min, Max int }

// ParseStatusRange reads one code ("204") or a range ("200-299").
func ParseStatusRange(s string) (StatusRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	r := StatusRange{Min: statusCode(lo), Max: statusCode(hi)}
	if r.Min == 0 || r.Max == 0 || r.Min > r.Max {
		return StatusRange{}, fmt.Errorf(`want a status code like "204" or a range like "200-299" (codes 100..599), got %q`, s)
	}
	return r, nil
}

// statusCode returns the HTTP status code s, or 0 if s is none.
func statusCode(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 || s != strconv.Itoa(n) {
		return 0
	}
	return n
}

func parseCheckURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf(`want an http:// or https:// URL with a host, got %q`, s)
	}
	return s, nil
}

// orUnset lets "" stand for the default, as a key left out does: the
// kubernetes keys whose defaults come from the environment are often
// written out empty in a ConfigMap.
func orUnset(parse func(string) (string, error)) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		return parse(s)
	}
}

// The Kubernetes names are checked by Kubernetes' own rules, so a typo is
// caught by check-config rather than by a watch that never matches.
func parseDNSSubdomain(s string) (string, error) {
	return k8sName(s, "a node name (RFC 1123 subdomain)", validation.IsDNS1123Subdomain)
}

func parseDNSLabel(s string) (string, error) {
	return k8sName(s, "a namespace (RFC 1123 label)", validation.IsDNS1123Label)
}

func parseQualifiedName(s string) (string, error) {
	return k8sName(s, "a class like vipd.io/bgp", validation.IsQualifiedName)
}

func k8sName(s, want string, check func(string) []string) (string, error) {
	if errs := check(s); len(errs) > 0 {
		return "", fmt.Errorf("want %s, got %q: %s", want, s, errs[0])
	}
	return s, nil
}

// parseLeaseDuration bounds the allocator's lease: shorter ones renew too
// often for a shared API server, longer ones leave Services without an
// allocator for minutes after its node dies.
func parseLeaseDuration(s string) (time.Duration, error) {
	v, err := parseDuration(s)
	if err == nil && (v < 3*time.Second || v > 10*time.Minute) {
		err = fmt.Errorf("want a duration from 3s to 10m, got %s", v)
	}
	return v, err
}
