package bgp

import (
	"errors"
	"fmt"
	"net/netip"
)

// Reasons the export guard refuses a prefix. Callers branch with errors.Is.
var (
	ErrInvalidPrefix  = errors.New("invalid prefix")
	ErrNotHostRoute   = errors.New("not a host route (/32 or /128)")
	ErrOutsideAllowed = errors.New("outside allowed_prefixes")
)

// guard is the export guard: it returns nil only for a host route (/32 or
// /128) that lies inside one of the allowed prefixes.
func guard(allowed []netip.Prefix, p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Is4In6() {
		return fmt.Errorf("%s: %w", p, ErrInvalidPrefix)
	}
	if p.Bits() != p.Addr().BitLen() {
		return fmt.Errorf("%s: %w", p, ErrNotHostRoute)
	}
	for _, a := range allowed {
		if a.IsValid() && a.Contains(p.Addr()) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", p, ErrOutsideAllowed)
}

// admitted is a route that passed the export guard. Only admit makes one,
// and the functions that hand paths to GoBGP take nothing else.
type admitted struct {
	route Route
}

// admit runs the export guard on r.
func admit(allowed []netip.Prefix, r Route) (admitted, error) {
	if err := guard(allowed, r.Prefix); err != nil {
		return admitted{}, err
	}
	return admitted{route: r}, nil
}

// refusalReason is the short text shown in RouteStatus.Refused.
func refusalReason(err error) string {
	for _, sentinel := range []error{ErrInvalidPrefix, ErrNotHostRoute, ErrOutsideAllowed} {
		if errors.Is(err, sentinel) {
			return sentinel.Error()
		}
	}
	return err.Error()
}
