package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds retries of an address dump the kernel interrupted
// because addresses changed while it ran.
const dumpAttempts = 5

// linkState is one interface as a Set pass found it.
type linkState struct {
	link netlink.Link // nil when missing or when the lookup failed
	err  error        // a lookup failure other than "not found"
}

func (l linkState) missing() bool { return l.link == nil && l.err == nil }

// snapshot is what one Set pass saw on the interfaces it cares about.
type snapshot struct {
	links    map[string]linkState
	prefixes map[Address][]int // prefix lengths of each address on its interface
}

// onLink reports whether a's IP is on its interface with any prefix length.
func (s *snapshot) onLink(a Address) bool { return len(s.prefixes[a]) > 0 }

// hasHostPrefix reports whether a is on its interface as a /32 or /128.
func (s *snapshot) hasHostPrefix(a Address) bool {
	for _, bits := range s.prefixes[a] {
		if bits == a.Addr.BitLen() {
			return true
		}
	}
	return false
}

// observe looks up the named interfaces and the addresses on them, with
// one address dump for all.
func (b *Binder) observe(names []string) (*snapshot, error) {
	snap := &snapshot{
		links:    make(map[string]linkState, len(names)),
		prefixes: make(map[Address][]int),
	}
	byIndex := make(map[int]string, len(names))
	for _, name := range names {
		link, err := b.nl.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		switch {
		case errors.As(err, &notFound):
			snap.links[name] = linkState{}
		case err != nil:
			snap.links[name] = linkState{err: err}
		default:
			snap.links[name] = linkState{link: link}
			byIndex[link.Attrs().Index] = name
		}
	}
	if len(byIndex) == 0 {
		return snap, nil
	}
	addrs, err := b.listAddrs()
	if err != nil {
		return nil, err
	}
	for _, na := range addrs {
		name, ok := byIndex[na.LinkIndex]
		ip, valid := netip.AddrFromSlice(na.IP)
		if !ok || !valid {
			continue
		}
		a := Address{Addr: ip, Interface: name}
		snap.prefixes[a] = append(snap.prefixes[a], prefixLen(na))
	}
	return snap, nil
}

// listAddrs dumps every address in the namespace.
func (b *Binder) listAddrs() ([]netlink.Addr, error) {
	var err error
	for range dumpAttempts {
		var addrs []netlink.Addr
		addrs, err = b.nl.AddrList(nil, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			if err != nil {
				return nil, fmt.Errorf("list addresses: %w", err)
			}
			return addrs, nil
		}
	}
	return nil, fmt.Errorf("list addresses: %w (after %d attempts)", err, dumpAttempts)
}

func prefixLen(na netlink.Addr) int {
	mask := na.Mask
	if na.Peer != nil {
		mask = na.Peer.Mask
	}
	ones, _ := mask.Size()
	return ones
}

// add puts a on its link. It reports false with a nil error when the
// address turned out to be there already (added by someone else since the
// snapshot, or an IPv6 address present with another prefix length): it is
// then the operator's.
func (b *Binder) add(a Address, snap *snapshot) (bool, error) {
	err := b.nl.AddrAdd(snap.links[a.Interface].link, hostAddr(a))
	switch {
	case errors.Is(err, unix.EEXIST):
		b.log.Info("address appeared on interface before vipd added it; leaving it to the operator",
			"event", "vip_foreign", "vip", a.Addr, "interface", a.Interface)
		return false, nil
	case err != nil:
		return false, vipError(a, "add", err)
	}
	b.log.Info("vip bound", "event", "vip_bound", "vip", a.Addr, "interface", a.Interface)
	return true, nil
}

// remove takes a off its link. It reports true once a is gone, including
// when someone removed it first.
func (b *Binder) remove(a Address, snap *snapshot) (bool, error) {
	err := b.nl.AddrDel(snap.links[a.Interface].link, hostAddr(a))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return false, vipError(a, "remove", err)
	}
	b.log.Info("vip unbound", "event", "vip_unbound", "vip", a.Addr, "interface", a.Interface)
	return true, nil
}

// hostAddr is a as a netlink host address with global scope; see the
// package comment for the flags.
func hostAddr(a Address) *netlink.Addr {
	bits := a.Addr.BitLen()
	na := &netlink.Addr{
		IPNet: &net.IPNet{IP: a.Addr.AsSlice(), Mask: net.CIDRMask(bits, bits)},
		Scope: unix.RT_SCOPE_UNIVERSE,
	}
	if a.Addr.Is6() {
		na.Flags = unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE
	}
	return na
}
