package agent

import (
	"errors"
	"net"
	"net/netip"
	"slices"
)

// defaultRouterID picks the first global IPv4 address on a non-loopback
// interface, skipping VIPs (a VIP moves between nodes; a router ID must not).
func defaultRouterID(vips []netip.Addr) (netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.Is4() && ip.IsGlobalUnicast() && !slices.Contains(vips, ip) {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("no global IPv4 address on a non-loopback interface: set bgp.router_id")
}
