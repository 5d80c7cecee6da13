package testnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sync/atomic"
)

var (
	defaultLAN4 = netip.MustParsePrefix("10.255.255.0/24")
	defaultLAN6 = netip.MustParsePrefix("fd00:255::/64")

	// memberName keeps names usable in namespace, file and interface names
	// ("v" + name <= 15 characters) and in BIRD symbols.
	memberName = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

	worldCounter atomic.Uint32
)

// withDefaults returns spec with its zero fields filled in.
func (spec Spec) withDefaults() Spec {
	if spec.Prefix == "" {
		spec.Prefix = fmt.Sprintf("vt%d-%d", os.Getpid(), worldCounter.Add(1))
	}
	spec.LAN4, spec.LAN6 = spec.lans()
	return spec
}

// lans returns the spec's LAN prefixes, defaulted and masked.
func (spec Spec) lans() (lan4, lan6 netip.Prefix) {
	if !spec.LAN4.IsValid() {
		spec.LAN4 = defaultLAN4
	}
	if !spec.LAN6.IsValid() {
		spec.LAN6 = defaultLAN6
	}
	return spec.LAN4.Masked(), spec.LAN6.Masked()
}

// validate reports every problem of a defaulted spec.
func (spec Spec) validate() error {
	var errs []error
	if !spec.LAN4.Addr().Is4() {
		errs = append(errs, fmt.Errorf("lan4 %s: not IPv4", spec.LAN4))
	}
	if !spec.LAN6.Addr().Is6() || spec.LAN6.Addr().Is4In6() {
		errs = append(errs, fmt.Errorf("lan6 %s: not IPv6", spec.LAN6))
	} else if 128-spec.LAN6.Bits() < 32-spec.LAN4.Bits() {
		errs = append(errs, fmt.Errorf("lan6 %s: too small to mirror lan4 %s", spec.LAN6, spec.LAN4))
	}
	names := map[string]bool{"lan": true}
	addrs := map[netip.Addr]string{}
	member := func(kind, name string, addr netip.Addr) {
		switch {
		case !memberName.MatchString(name):
			errs = append(errs, fmt.Errorf("%s %q: name must match %s", kind, name, memberName))
		case names[name]:
			errs = append(errs, fmt.Errorf("%s %q: name in use", kind, name))
		}
		names[name] = true
		if err := spec.checkLANAddr(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", kind, name, err))
		} else if other, ok := addrs[addr]; ok {
			errs = append(errs, fmt.Errorf("%s %s: address %s already used by %s", kind, name, addr, other))
		}
		addrs[addr] = name
	}
	for _, r := range spec.Routers {
		member("router", r.Name, r.Address)
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("router %s: %w", r.Name, err))
		}
	}
	for _, n := range spec.Nodes {
		member("node", n.Name, n.Address)
	}
	if spec.Client != nil {
		member("client", spec.Client.Name, spec.Client.Address)
	}
	for _, h := range spec.Hosts {
		member("host", h.Name, h.Address)
	}
	return errors.Join(errs...)
}

// checkLANAddr accepts a host address of LAN4.
func (spec Spec) checkLANAddr(addr netip.Addr) error {
	if !spec.LAN4.Contains(addr) {
		return fmt.Errorf("address %s is not in lan4 %s", addr, spec.LAN4)
	}
	if addr == spec.LAN4.Addr() {
		return fmt.Errorf("address %s is the network address", addr)
	}
	return nil
}

func (r RouterSpec) validate() error {
	var errs []error
	if r.Kind != BIRD && r.Kind != FRR {
		errs = append(errs, fmt.Errorf("kind %q: want %q or %q", r.Kind, BIRD, FRR))
	}
	if r.ASN == 0 {
		errs = append(errs, errors.New("asn: must not be 0"))
	}
	for _, n := range r.Neighbors {
		errs = append(errs, n.validate())
		if r.PeerAddress.IsValid() && !n.Multihop {
			errs = append(errs, fmt.Errorf("neighbor %s: a session from peer address %s must be multihop", n.Address, r.PeerAddress))
		}
	}
	return errors.Join(errs...)
}

// Addr6 returns the LAN IPv6 address that mirrors the LAN IPv4 address a:
// the same host part inside LAN6.
func (spec Spec) Addr6(a netip.Addr) netip.Addr {
	lan4, lan6 := spec.lans()
	v4 := a.As4()
	net4 := lan4.Addr().As4()
	v6 := lan6.Addr().As16()
	for i := range 4 {
		v6[12+i] |= v4[i] &^ net4[i]
	}
	return netip.AddrFrom16(v6)
}

// passwordRE keeps passwords writable unquoted in FRR and quoted in BIRD.
var passwordRE = regexp.MustCompile(`^[A-Za-z0-9._~!@#$%^&*()+=-]*$`)

func (n Neighbor) validate() error {
	var errs []error
	if !n.Address.IsValid() || n.ASN == 0 {
		errs = append(errs, errors.New("needs an address and an asn"))
	}
	if !passwordRE.MatchString(n.Password) {
		errs = append(errs, fmt.Errorf("password must match %s", passwordRE))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("neighbor %s: %w", n.Address, err)
	}
	return nil
}

// FreeAddrs returns the n highest LAN IPv4 host addresses that no member
// of spec uses, highest first, so that a helper can add members without
// the test picking addresses. The broadcast address is never returned.
func (spec Spec) FreeAddrs(n int) ([]netip.Addr, error) {
	spec = spec.withDefaults()
	used := map[netip.Addr]bool{}
	for _, r := range spec.Routers {
		used[r.Address], used[r.PeerAddress] = true, true
	}
	for _, m := range spec.members() {
		used[m.Address] = true
	}
	var free []netip.Addr
	a := lastAddr(spec.LAN4).Prev() // not the broadcast address
	for ; len(free) < n && a.IsValid() && a != spec.LAN4.Addr() && spec.LAN4.Contains(a); a = a.Prev() {
		if !used[a] {
			free = append(free, a)
		}
	}
	if len(free) < n {
		return nil, fmt.Errorf("lan4 %s: %d free addresses, want %d", spec.LAN4, len(free), n)
	}
	return free, nil
}

// members lists the nodes, the client and the hosts.
func (spec Spec) members() []NodeSpec {
	members := append([]NodeSpec(nil), spec.Nodes...)
	if spec.Client != nil {
		members = append(members, *spec.Client)
	}
	return append(members, spec.Hosts...)
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := range 4 {
		hostBits := max(0, min(8, 32-p.Bits()-8*(3-i)))
		b[i] |= byte(1<<hostBits - 1)
	}
	return netip.AddrFrom4(b)
}
