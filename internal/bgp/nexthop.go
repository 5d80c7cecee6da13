package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/config"
)

// errNoGlobalIPv6 means the interface towards a peer has no usable global
// IPv6 address to use as the next hop of IPv6 routes.
var errNoGlobalIPv6 = errors.New("no global IPv6 address")

// nextHopResolver finds the host's global IPv6 address on the interface the
// kernel uses to reach peer (from source, if valid).
type nextHopResolver func(peer, source netip.Addr) (netip.Addr, error)

// ipv6NextHop decides the next hop of IPv6 routes sent to p. It returns the
// next hop, or the reason IPv6 routes cannot be sent to p.
func ipv6NextHop(p config.Peer, resolve nextHopResolver) (netip.Addr, string) {
	if !hasFamily(p, config.IPv6) {
		return netip.Addr{}, "family ipv6 is not configured for this peer"
	}
	if p.IPv6NextHop.IsValid() {
		return p.IPv6NextHop, ""
	}
	nh, err := resolve(p.Address, p.SourceAddress)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("no IPv6 next hop: %v; set ipv6_next_hop", err)
	}
	return nh, ""
}

// hasFamily reports whether p announces family f. No families means both.
func hasFamily(p config.Peer, f config.Family) bool {
	return len(p.Families) == 0 || slices.Contains(p.Families, f)
}

// netlinkNextHop resolves next hops from the kernel: `ip route get PEER`,
// then the first global IPv6 address of the route's interface. Addresses
// inside exclude (the VIP ranges) are never chosen.
func netlinkNextHop(exclude []netip.Prefix) nextHopResolver {
	return func(peer, source netip.Addr) (netip.Addr, error) {
		opts := &netlink.RouteGetOptions{}
		if source.IsValid() {
			opts.SrcAddr = net.IP(source.AsSlice())
		}
		routes, err := netlink.RouteGetWithOptions(net.IP(peer.AsSlice()), opts)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("route to %s: %w", peer, err)
		}
		if len(routes) == 0 {
			return netip.Addr{}, fmt.Errorf("route to %s: none", peer)
		}
		link, err := netlink.LinkByIndex(routes[0].LinkIndex)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("interface towards %s: %w", peer, err)
		}
		name := link.Attrs().Name
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("addresses of %s: %w", name, err)
		}
		nh, ok := pickIPv6NextHop(addrs, exclude)
		if !ok {
			return netip.Addr{}, fmt.Errorf("%w on %s (the interface towards %s)", errNoGlobalIPv6, name, peer)
		}
		return nh, nil
	}
}

// pickIPv6NextHop returns the first usable global IPv6 address: global
// scope, not tentative, failed or deprecated, not inside exclude. Addresses
// with a shorter prefix than /128 come first: a /128 is more likely a VIP
// bound elsewhere than the interface's own address.
func pickIPv6NextHop(addrs []netlink.Addr, exclude []netip.Prefix) (netip.Addr, bool) {
	const unusable = unix.IFA_F_TENTATIVE | unix.IFA_F_DADFAILED | unix.IFA_F_DEPRECATED
	var host netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil || a.Scope != unix.RT_SCOPE_UNIVERSE || a.Flags&unusable != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() || ip.IsLinkLocalUnicast() {
			continue
		}
		if slices.ContainsFunc(exclude, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			continue
		}
		if ones, _ := a.Mask.Size(); ones < 128 {
			return ip, true
		}
		if !host.IsValid() {
			host = ip
		}
	}
	return host, host.IsValid()
}
