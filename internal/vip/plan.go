package vip

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// plan is what one Set pass will do, decided from a snapshot before any
// change is made.
type plan struct {
	add     []Address // desired, ours or nobody's, not on the link: record, then add
	keep    []Address // desired, ours, on the link
	foreign []Address // desired, on the link but not recorded: the operator's
	remove  []Address // ours, no longer desired, on the link: remove, then forget
	forget  []Address // ours but not on the link (or the interface is gone)
	failed  []error   // desired addresses that cannot be bound this pass
}

// makePlan diffs the desired set against the ledger and the links.
func makePlan(want map[Address]struct{}, recorded []Address, snap *snapshot) plan {
	var p plan
	ours := make(map[Address]struct{}, len(recorded))
	for _, a := range recorded {
		ours[a] = struct{}{}
		if _, desired := want[a]; !desired {
			p.planUndesired(a, snap)
		}
	}
	for a := range want {
		_, isOurs := ours[a]
		p.planDesired(a, isOurs, snap)
	}
	for _, s := range [][]Address{p.add, p.keep, p.foreign, p.remove, p.forget} {
		sortAddresses(s)
	}
	return p
}

func (p *plan) planDesired(a Address, isOurs bool, snap *snapshot) {
	link := snap.links[a.Interface]
	switch {
	case link.err != nil:
		p.failed = append(p.failed, vipError(a, "look up interface", link.err))
	case link.missing():
		p.failed = append(p.failed, vipError(a, "bind", errNoInterface))
		if isOurs {
			p.forget = append(p.forget, a)
		}
	case isOurs && snap.hasHostPrefix(a):
		p.keep = append(p.keep, a)
	case !isOurs && snap.onLink(a):
		p.foreign = append(p.foreign, a)
	default:
		// Ours but missing (someone removed it, or a crash came between
		// record and add), or nobody's yet.
		p.add = append(p.add, a)
	}
}

func (p *plan) planUndesired(a Address, snap *snapshot) {
	link := snap.links[a.Interface]
	switch {
	case link.err != nil:
		// Cannot tell whether it is there: keep the record for a later pass.
	case snap.hasHostPrefix(a):
		p.remove = append(p.remove, a)
	default:
		p.forget = append(p.forget, a)
	}
}

var errNoInterface = errors.New("interface not found")

// validate turns the desired list into a set, reporting bad entries.
func validate(desired []Address) (map[Address]struct{}, error) {
	want := make(map[Address]struct{}, len(desired))
	var errs []error
	for _, a := range desired {
		err := a.Validate()
		if err == nil && a.Addr.Is4In6() {
			err = errors.New("IPv4-mapped IPv6 address; use the IPv4 form")
		}
		if err != nil {
			errs = append(errs, vipError(a, "invalid", err))
			continue
		}
		want[a] = struct{}{}
	}
	return want, errors.Join(errs...)
}

// addressInterfaces lists the interfaces named by want and recorded.
func addressInterfaces(want map[Address]struct{}, recorded []Address) []string {
	var names []string
	for a := range want {
		names = append(names, a.Interface)
	}
	for _, a := range recorded {
		names = append(names, a.Interface)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func vipError(a Address, op string, err error) error {
	return fmt.Errorf("vip %s on %s: %s: %w", a.Addr, a.Interface, op, err)
}

func sortAddresses(s []Address) {
	slices.SortFunc(s, func(x, y Address) int {
		if c := cmp.Compare(x.Interface, y.Interface); c != 0 {
			return c
		}
		return x.Addr.Compare(y.Addr)
	})
}
