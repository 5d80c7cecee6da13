package config

import (
	"fmt"
	"net/netip"
)

// specialRanges are the blocks whose addresses cannot serve as a VIP, a
// pool's address or a load balancer's: the kernel gives them a meaning of
// their own (loopback, broadcast, multicast), or no router forwards them.
// A wide bgp.allowed_prefixes (0.0.0.0/0) must not let one through: bound
// to lo, 127.0.0.2 or 255.255.255.255 changes how the host itself routes.
// The first block containing an address names it, so the broadcast address
// comes before the reserved block around it.
var specialRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (0.0.0.0/8)`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// SpecialAddr returns what makes a unfit as a service address (a VIP, a
// pool's or a load balancer's address), or "" when it is an ordinary
// unicast address.
func SpecialAddr(a netip.Addr) string {
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	return ""
}

// specialIn returns the first special block p overlaps, so that a pool
// such as 0.0.0.0/0 is refused rather than handing out 0.0.0.0.
func specialIn(p netip.Prefix) (netip.Prefix, string, bool) {
	for _, r := range specialRanges {
		if r.prefix.Overlaps(p) {
			return r.prefix, r.what, true
		}
	}
	return netip.Prefix{}, "", false
}

// checkServiceAddr is the error for a special address used as a VIP.
func checkServiceAddr(a netip.Addr) error {
	if what := SpecialAddr(a); what != "" {
		return fmt.Errorf("%s cannot be a VIP: it is %s, not an ordinary unicast address", a, what)
	}
	return nil
}
