package xdp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Neighbor is where frames for a backend go: its MAC, behind an interface.
type Neighbor struct {
	MAC     net.HardwareAddr
	Ifindex int
}

// ErrNotOnLink says a backend is not on a LAN of this host: L2 direct
// server return cannot reach it.
var ErrNotOnLink = errors.New("not on a LAN of this host")

// ErrUnresolved says the kernel has no MAC for a backend (yet): it did not
// answer ARP or neighbour solicitation.
var ErrUnresolved = errors.New("no answer to ARP/neighbour solicitation")

// usable are the neighbour states whose MAC may be used. STALE is only
// unconfirmed: the kernel keeps using it for its own packets too, and
// Resolve asks it to confirm it.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// Resolve finds the MACs of addrs in the kernel's neighbour table, in the
// caller's network namespace. It asks the kernel to resolve those it
// lacks, or holds only unconfirmed, and waits up to wait for the answers.
// Addresses it cannot resolve are in the second map with the reason.
//
// Why the kernel's neighbour table: a neighbour entry created with
// NTF_USE starts the kernel's own resolution, as if it were about to send
// a packet there (ARP for IPv4, neighbour discovery for IPv6, with its
// retries and timers), also for a backend this host never talked to. That
// needs no raw socket of vipd's and sends nothing to the backend's ports
// (a UDP probe would), and the kernel keeps the entry fresh and answers
// the next lookup from its table.
func Resolve(ctx context.Context, addrs []netip.Addr, wait time.Duration) (map[netip.Addr]Neighbor, map[netip.Addr]error) {
	found := make(map[netip.Addr]Neighbor, len(addrs))
	failed := make(map[netip.Addr]error)
	pending := map[netip.Addr]int{} // address -> ifindex
	for _, a := range addrs {
		ifindex, err := onLinkInterface(a)
		if err != nil {
			failed[a] = err
			continue
		}
		n, state, err := lookupNeigh(a, ifindex)
		switch {
		case err != nil:
			failed[a] = err
			continue
		case state&usable != 0:
			found[a] = n
			if state&(netlink.NUD_REACHABLE|netlink.NUD_PERMANENT) != 0 {
				continue
			}
		}
		if err := requestResolution(a, ifindex); err != nil {
			failed[a] = err
			continue
		}
		if _, ok := found[a]; !ok {
			pending[a] = ifindex
		}
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			deadline.Reset(0)
		case <-deadline.C:
			for a := range pending {
				failed[a] = ErrUnresolved
			}
			return found, failed
		case <-tick.C:
		}
		for a, ifindex := range pending {
			n, state, err := lookupNeigh(a, ifindex)
			if err == nil && state&usable != 0 {
				found[a] = n
				delete(pending, a)
			}
		}
	}
	return found, failed
}

// onLinkInterface returns the interface through which a is reached
// directly, without a gateway.
func onLinkInterface(a netip.Addr) (int, error) {
	routes, err := netlink.RouteGet(net.IP(a.AsSlice()))
	if err != nil {
		return 0, fmt.Errorf("route to %s: %w", a, err)
	}
	if len(routes) == 0 {
		return 0, fmt.Errorf("no route to %s", a)
	}
	r := routes[0]
	switch {
	case r.Type == unix.RTN_LOCAL:
		return 0, fmt.Errorf("%s is this host's own address", a)
	case r.Gw != nil:
		return 0, fmt.Errorf("%s is reached through gateway %s: %w", a, r.Gw, ErrNotOnLink)
	}
	return r.LinkIndex, nil
}

// lookupNeigh returns a's entry in the neighbour table of ifindex, and its
// state (0 if there is none).
func lookupNeigh(a netip.Addr, ifindex int) (Neighbor, int, error) {
	family := netlink.FAMILY_V6
	if a.Is4() {
		family = netlink.FAMILY_V4
	}
	list, err := netlink.NeighList(ifindex, family)
	if err != nil {
		return Neighbor{}, 0, fmt.Errorf("neighbour table: %w", err)
	}
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && ip.Unmap() == a && len(n.HardwareAddr) == 6 {
			return Neighbor{MAC: n.HardwareAddr, Ifindex: ifindex}, n.State, nil
		}
	}
	return Neighbor{}, 0, nil
}

// requestResolution makes the kernel resolve a (or confirm what it holds).
func requestResolution(a netip.Addr, ifindex int) error {
	family := netlink.FAMILY_V6
	if a.Is4() {
		family = netlink.FAMILY_V4
	}
	err := netlink.NeighSet(&netlink.Neigh{
		LinkIndex: ifindex, Family: family, IP: net.IP(a.AsSlice()), Flags: netlink.NTF_USE,
	})
	if err != nil {
		return fmt.Errorf("ask the kernel to resolve %s: %w", a, err)
	}
	return nil
}

// InterfaceTowards returns the name of the interface of the route to a:
// where traffic from a router at a arrives.
func InterfaceTowards(a netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(net.IP(a.AsSlice()))
	if err != nil {
		return "", fmt.Errorf("route to %s: %w", a, err)
	}
	if len(routes) == 0 {
		return "", fmt.Errorf("no route to %s", a)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("interface of the route to %s: %w", a, err)
	}
	return l.Attrs().Name, nil
}
