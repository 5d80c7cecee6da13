package testnet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// FIB returns the gateways of the kernel's main-table route for exactly
// prefix, sorted; none if there is no such route. Single-path and
// multipath routes (with or without nexthop objects) are both read.
func (h *Host) FIB(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := run(ctx, "ip", "-n", h.ns, family, "-json", "route", "show", "exact", prefix.Masked().String())
	if err != nil {
		return nil, fmt.Errorf("%s: fib: %w", h.name, err)
	}
	gateways, err := parseFIB([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("%s: fib %s: %w", h.name, prefix, err)
	}
	return gateways, nil
}

// WaitFIB waits up to timeout until FIB(prefix) holds exactly the
// gateways want, in any order; an empty want waits for the route to go.
func (h *Host) WaitFIB(ctx context.Context, prefix netip.Prefix, want []netip.Addr, timeout time.Duration) error {
	want = sortedSet(want)
	err := WaitFor(ctx, timeout, func(ctx context.Context) error {
		got, err := h.FIB(ctx, prefix)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("fib %s: have nexthops %v, want %v", prefix, got, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	return nil
}

// ipRoute is the part of `ip -json route` output the FIB needs.
type ipRoute struct {
	Dst      string      `json:"dst"`
	Type     string      `json:"type"` // absent for unicast
	Metric   uint32      `json:"metric"`
	Gateway  string      `json:"gateway"`
	Via      *ipVia      `json:"via"` // a gateway of the other family
	Dev      string      `json:"dev"`
	Nexthops []ipNexthop `json:"nexthops"`
}

type ipNexthop struct {
	Gateway string `json:"gateway"`
	Via     *ipVia `json:"via"`
	Dev     string `json:"dev"`
}

type ipVia struct {
	Host string `json:"host"`
}

// parseFIB returns the sorted, distinct gateways of the preferred (lowest
// metric) routes in `ip -json route show exact P` output.
func parseFIB(data []byte) ([]netip.Addr, error) {
	var routes []ipRoute
	if err := json.Unmarshal(data, &routes); err != nil {
		return nil, fmt.Errorf("parse ip route json: %w", err)
	}
	if len(routes) == 0 {
		return nil, nil
	}
	best := slices.MinFunc(routes, func(a, b ipRoute) int { return cmp.Compare(a.Metric, b.Metric) }).Metric
	var gateways []netip.Addr
	for _, r := range routes {
		if r.Metric != best {
			continue
		}
		if r.Type != "" && r.Type != "unicast" {
			return nil, fmt.Errorf("route %s is of type %s", r.Dst, r.Type)
		}
		hops := r.Nexthops
		if len(hops) == 0 {
			hops = []ipNexthop{{Gateway: r.Gateway, Via: r.Via, Dev: r.Dev}}
		}
		for _, hop := range hops {
			gw, err := hop.gateway()
			if err != nil {
				return nil, fmt.Errorf("route %s: %w", r.Dst, err)
			}
			gateways = append(gateways, gw)
		}
	}
	return sortedSet(gateways), nil
}

func (hop ipNexthop) gateway() (netip.Addr, error) {
	s := hop.Gateway
	if s == "" && hop.Via != nil {
		s = hop.Via.Host
	}
	if s == "" {
		return netip.Addr{}, fmt.Errorf("nexthop on dev %q has no gateway", hop.Dev)
	}
	gw, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("nexthop gateway: %w", err)
	}
	return gw, nil
}

// sortedSet returns the distinct addresses of addrs in order, in a new slice.
func sortedSet(addrs []netip.Addr) []netip.Addr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
