package store

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func itoa(n int) string { return strconv.Itoa(n) }

func netipMust(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustAddress(t testing.TB, addr, iface string) Address {
	t.Helper()
	return Address{Addr: netipMust(t, addr), Interface: iface}
}

func TestAddressKeyRoundTrip(t *testing.T) {
	for _, a := range []Address{
		mustAddress(t, "192.0.2.1", "lo"),
		mustAddress(t, "2001:db8::1", "eth0.100"),
		mustAddress(t, "::ffff:192.0.2.1", "veth-a"),
		mustAddress(t, "fda4:5ff2:8477:1755::", "abcdefghijklmno"),
	} {
		got, err := parseAddressKey(addressKey(a))
		if err != nil {
			t.Errorf("parse(key(%v)): %v", a, err)
			continue
		}
		if got != a {
			t.Errorf("parse(key(%v)) = %v", a, got)
		}
	}
}

func TestParseAddressKeyRejects(t *testing.T) {
	for _, key := range []string{
		"",
		"lo",
		"lo ",
		" 192.0.2.1",
		"lo 192.0.2.1/32",
		"lo fe80::1%lo",
		"lo 192.0.2.1 extra",
		"abcdefghijklmnop 192.0.2.1",
	} {
		if a, err := parseAddressKey([]byte(key)); err == nil {
			t.Errorf("parseAddressKey(%q) = %v, want error", key, a)
		}
	}
}

// FuzzParseAddressKey checks that every key the parser accepts is one the
// encoder would write: parse → encode gives back the same bytes.
func FuzzParseAddressKey(f *testing.F) {
	for _, seed := range []string{"lo 192.0.2.1", "eth0 2001:db8::1", "lo ::ffff:1.2.3.4", "x", "lo  1.2.3.4"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		a, err := parseAddressKey(key)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed %q into invalid %v: %v", key, a, err)
		}
		if got := addressKey(a); string(got) != string(key) {
			t.Fatalf("key %q parsed to %v, which encodes as %q", key, a, got)
		}
	})
}
