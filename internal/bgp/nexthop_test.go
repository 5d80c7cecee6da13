package bgp

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/config"
)

func nlAddr(cidr string, scope, flags int) netlink.Addr {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return netlink.Addr{IPNet: n, Scope: scope, Flags: flags}
}

func TestPickIPv6NextHop(t *testing.T) {
	vips := []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/127")}
	tests := []struct {
		name  string
		addrs []netlink.Addr
		want  string
	}{
		{"link-local only", []netlink.Addr{nlAddr("fe80::1/64", unix.RT_SCOPE_LINK, 0)}, ""},
		{"first global", []netlink.Addr{
			nlAddr("fe80::1/64", unix.RT_SCOPE_LINK, 0),
			nlAddr("2001:db8:5::5/64", unix.RT_SCOPE_UNIVERSE, 0),
			nlAddr("2001:db8:6::6/64", unix.RT_SCOPE_UNIVERSE, 0),
		}, "2001:db8:5::5"},
		{"skips tentative and deprecated", []netlink.Addr{
			nlAddr("2001:db8:5::5/64", unix.RT_SCOPE_UNIVERSE, unix.IFA_F_TENTATIVE),
			nlAddr("2001:db8:5::6/64", unix.RT_SCOPE_UNIVERSE, unix.IFA_F_DEPRECATED),
			nlAddr("2001:db8:5::7/64", unix.RT_SCOPE_UNIVERSE, 0),
		}, "2001:db8:5::7"},
		{"skips VIPs", []netlink.Addr{
			nlAddr("2001:db8:1::/128", unix.RT_SCOPE_UNIVERSE, 0),
			nlAddr("2001:db8:5::5/64", unix.RT_SCOPE_UNIVERSE, 0),
		}, "2001:db8:5::5"},
		{"prefers a subnet address over a /128", []netlink.Addr{
			nlAddr("2001:db8:9::9/128", unix.RT_SCOPE_UNIVERSE, 0),
			nlAddr("2001:db8:5::5/64", unix.RT_SCOPE_UNIVERSE, 0),
		}, "2001:db8:5::5"},
		{"a /128 when nothing else", []netlink.Addr{nlAddr("2001:db8:9::9/128", unix.RT_SCOPE_UNIVERSE, 0)}, "2001:db8:9::9"},
		{"host scope", []netlink.Addr{nlAddr("::1/128", unix.RT_SCOPE_HOST, 0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pickIPv6NextHop(tt.addrs, vips)
			if tt.want == "" {
				if ok {
					t.Errorf("picked %v, want none", got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tt.want) {
				t.Errorf("picked %v (%v), want %s", got, ok, tt.want)
			}
		})
	}
}

func TestIPv6NextHop(t *testing.T) {
	found := netip.MustParseAddr("2001:db8::2")
	resolve := func(peer, source netip.Addr) (netip.Addr, error) {
		if peer == peerB {
			return netip.Addr{}, errNoGlobalIPv6
		}
		return found, nil
	}
	explicit := netip.MustParseAddr("2001:db8::77")
	tests := []struct {
		name       string
		peer       config.Peer
		want       netip.Addr
		wantReason string
	}{
		{"explicit", config.Peer{Address: peerA, IPv6NextHop: explicit}, explicit, ""},
		{"resolved", config.Peer{Address: peerA}, found, ""},
		{"none on the interface", config.Peer{Address: peerB}, netip.Addr{}, "no global IPv6 address"},
		{"ipv4 only peer", config.Peer{Address: peerA, Families: []config.Family{config.IPv4}, IPv6NextHop: explicit}, netip.Addr{}, "family ipv6 is not configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := ipv6NextHop(tt.peer, resolve)
			if got != tt.want || (tt.wantReason == "") != (reason == "") || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("got %v %q, want %v %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

// The netlink resolver on this host's loopback: ::1 is host scope, so there
// is no global address towards 127.0.0.1.
func TestNetlinkNextHopLoopback(t *testing.T) {
	_, err := netlinkNextHop(nil)(netip.MustParseAddr("127.0.0.1"), netip.Addr{})
	if !errors.Is(err, errNoGlobalIPv6) {
		t.Skipf("loopback has a global IPv6 address here (%v)", err)
	}
	if !strings.Contains(err.Error(), "lo") {
		t.Errorf("error %q does not name the interface", err)
	}
}
