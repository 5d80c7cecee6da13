package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/lb"
)

// flow names the conntrack entries of one backend of one load balancer:
// protocol, original destination vip, reply source backend.
type flow struct {
	proto   uint8 // IP protocol number
	vip     netip.AddrPort
	backend netip.AddrPort
}

func newFlow(proto lb.Protocol, vip, backend netip.AddrPort) flow {
	n := uint8(unix.IPPROTO_TCP)
	if proto == lb.UDP {
		n = unix.IPPROTO_UDP
	}
	return flow{proto: n, vip: vip, backend: backend}
}

// flowFilter matches the conntrack entries of a set of flows.
type flowFilter map[flow]struct{}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f flowFilter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	vip, ok1 := netip.AddrFromSlice(c.Forward.DstIP)
	backend, ok2 := netip.AddrFromSlice(c.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	_, ok := f[flow{
		proto:   c.Forward.Protocol,
		vip:     netip.AddrPortFrom(vip.Unmap(), c.Forward.DstPort),
		backend: netip.AddrPortFrom(backend.Unmap(), c.Reverse.SrcPort),
	}]
	return ok
}

// deleteConntrack deletes the conntrack entries of flows in the caller's
// network namespace and returns how many it deleted.
func deleteConntrack(flows []flow) (int, error) {
	byFamily := map[netlink.InetFamily]flowFilter{}
	for _, f := range flows {
		family := netlink.InetFamily(unix.AF_INET6)
		if f.vip.Addr().Is4() {
			family = unix.AF_INET
		}
		if byFamily[family] == nil {
			byFamily[family] = flowFilter{}
		}
		byFamily[family][f] = struct{}{}
	}
	var total uint
	var errs []error
	for family, filter := range byFamily {
		n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, filter)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("conntrack (family %d): %w", family, err))
		}
	}
	return int(total), errors.Join(errs...)
}
