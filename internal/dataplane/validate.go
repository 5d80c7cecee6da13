package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/vipd/vipd/internal/lb"
)

// idRE keeps load-balancer IDs usable in nft object names; a UUID fits.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Validate reports every problem of s, each naming its load balancer or
// filter: what Set refuses before it touches the kernel.
func (s State) Validate() error {
	var errs []error
	ids := make(map[string]bool, len(s.LoadBalancers))
	type listener struct {
		addr  netip.AddrPort
		proto lb.Protocol
	}
	listeners := make(map[listener]string, len(s.LoadBalancers))
	for _, l := range s.LoadBalancers {
		for _, err := range l.problems() {
			errs = append(errs, fmt.Errorf("dataplane: lb %s: %w", l.ID, err))
		}
		if ids[l.ID] {
			errs = append(errs, fmt.Errorf("dataplane: lb %s: id used twice", l.ID))
		}
		ids[l.ID] = true
		key := listener{netip.AddrPortFrom(l.Address, l.Port), l.Protocol}
		if other, ok := listeners[key]; ok && other != l.ID {
			errs = append(errs, fmt.Errorf("dataplane: lb %s: %s %s is also lb %s", l.ID, key.addr, key.proto, other))
		}
		listeners[key] = l.ID
	}
	filtered := make(map[netip.Addr]bool, len(s.Filters))
	for _, f := range s.Filters {
		if err := checkAddr(f.Address); err != nil {
			errs = append(errs, fmt.Errorf("dataplane: filter %s: address: %w", f.Address, err))
		}
		for _, p := range f.Ports {
			if p == 0 {
				errs = append(errs, fmt.Errorf("dataplane: filter %s: port 0", f.Address))
			}
		}
		if filtered[f.Address] {
			errs = append(errs, fmt.Errorf("dataplane: filter %s: address filtered twice", f.Address))
		}
		filtered[f.Address] = true
	}
	return errors.Join(errs...)
}

// problems returns every problem of one load balancer.
func (l LoadBalancer) problems() []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !idRE.MatchString(l.ID) {
		fail("id %q: want 1-64 letters, digits, '-' or '_', starting with a letter or digit", l.ID)
	}
	if err := checkAddr(l.Address); err != nil {
		fail("address: %w", err)
	}
	if l.Port == 0 {
		fail("port 0")
	}
	if l.Protocol != lb.TCP && l.Protocol != lb.UDP {
		fail("protocol %q: want %q or %q", l.Protocol, lb.TCP, lb.UDP)
	}
	switch l.Mode {
	case lb.ModeNAT:
	case lb.ModeLocal:
		if l.Masquerade {
			fail("masquerade: only for mode %s", lb.ModeNAT)
		}
	default:
		fail("mode %q: want %q or %q", l.Mode, lb.ModeNAT, lb.ModeLocal)
	}
	seen := make(map[netip.AddrPort]bool, len(l.Backends))
	for _, b := range l.Backends {
		a := b.Addr.Addr()
		switch err := checkAddr(a); {
		case err != nil:
			fail("backend %s: %w", b.Addr, err)
		case b.Addr.Port() == 0:
			fail("backend %s: port 0", b.Addr)
		case l.Address.IsValid() && a.Is4() != l.Address.Is4():
			fail("backend %s: not in the address family of %s", b.Addr, l.Address)
		case l.Mode == lb.ModeLocal && a != l.Address:
			fail("backend %s: mode local sends to the load balancer's own address %s", b.Addr, l.Address)
		case seen[b.Addr]:
			fail("backend %s: listed twice", b.Addr)
		}
		seen[b.Addr] = true
	}
	return errs
}

// checkAddr accepts an address nft can match packets on.
func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("missing")
	case a.IsUnspecified():
		return fmt.Errorf("%s is unspecified", a)
	case a.Is4In6():
		return fmt.Errorf("%s is IPv4-mapped; use %s", a, a.Unmap())
	case a.Zone() != "":
		return fmt.Errorf("%s has a zone", a)
	}
	return nil
}
