package vip

import (
	"fmt"
	"net/netip"
)

// ForeignAddrs returns every address on the host's interfaces that vipd
// did not add (it has no record of it), with its interface's name: the
// operator's addresses, which a load balancer must never be handed. An
// address vipd added is left out even while it waits to be removed, so a
// load balancer deleted a moment ago frees its address at once.
func (b *Binder) ForeignAddrs() (map[netip.Addr]string, error) {
	recorded, err := b.ledger.AddedAddresses()
	if err != nil {
		return nil, fmt.Errorf("vip: read ledger: %w", err)
	}
	ours := make(map[netip.Addr]bool, len(recorded))
	for _, a := range recorded {
		ours[a.Addr] = true
	}
	links, err := b.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("vip: list interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := b.listAddrs()
	if err != nil {
		return nil, fmt.Errorf("vip: %w", err)
	}
	out := make(map[netip.Addr]string)
	for _, na := range addrs {
		ip, ok := netip.AddrFromSlice(na.IP)
		if !ok || ours[ip.Unmap()] {
			continue
		}
		out[ip.Unmap()] = names[na.LinkIndex]
	}
	return out, nil
}
