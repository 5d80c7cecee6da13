package kube

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vipd/vipd/internal/config"
)

// Family is an IP address family, as in a Service's spec.ipFamilies.
type Family int

// The families; the numbers are the IP versions, so the zero value is no
// family at all rather than a silent IPv4.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy is a Service's spec.ipFamilyPolicy, with the Kubernetes
// values; "" means SingleStack.
type FamilyPolicy string

// The policies Kubernetes defines.
const (
	SingleStack      FamilyPolicy = "SingleStack"
	PreferDualStack  FamilyPolicy = "PreferDualStack"
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Port is one of a Service's ports, as far as sharing an address cares.
type Port struct {
	Protocol string // "TCP", "UDP" or "SCTP", as the API server defaulted it
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Request is one LoadBalancer Service's need, read from its spec,
// annotations and status.
type Request struct {
	Service  string       // namespace/name: the unique key
	Pool     string       // annotation vipd.io/pool; "" = any pool
	Want     []netip.Addr // spec.loadBalancerIP or annotation vipd.io/addresses: at most one per family
	Families []Family     // spec.ipFamilies in order; empty means [IPv4]
	Policy   FamilyPolicy
	ShareKey string       // annotation vipd.io/allow-shared-ip; "" = never shares
	Ports    []Port       // spec.ports
	Current  []netip.Addr // the IPs in status.loadBalancer.ingress now
}

// Assignment is what one Service gets.
type Assignment struct {
	Service string
	// Addrs is what the Service's status should say. On success it is one
	// address per family, in the Service's family order. On failure it is
	// the Current addresses the Service still holds validly, in Current's
	// order (often none): a bad edit does not take a working address away.
	Addrs []netip.Addr
	Err   *Error // nil on success
}

// AllocReason says why a Service got no address; it is meant as the reason of a
// Kubernetes Event, so it is CamelCase.
type AllocReason string

// The reasons Allocate gives.
const (
	ReasonInvalidRequest    AllocReason = "InvalidRequest"    // the families, policy or requested addresses do not make sense
	ReasonNoSuchPool        AllocReason = "NoSuchPool"        // vipd.io/pool names no configured pool
	ReasonAddressNotAllowed AllocReason = "AddressNotAllowed" // a requested address is outside the pools, special or taken
	ReasonAddressInUse      AllocReason = "AddressInUse"      // a requested address is another Service's, and they cannot share it
	ReasonPoolExhausted     AllocReason = "PoolExhausted"     // no free address of a needed family
)

// Error is why a Service got no address. Message names the address, pool
// or annotation at fault.
type Error struct {
	Reason  AllocReason
	Message string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Message }

func errorf(r AllocReason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// maxUnfitSkips bounds how many special or taken addresses one Allocate
// steps over in a prefix before it calls the prefix exhausted. Held addresses
// do not count: there are only as many of those as Services. Without it, a
// taken function that refuses a whole /64 would never let the scan end.
const maxUnfitSkips = 1 << 16

// Allocate decides the addresses of every LoadBalancer Service at once,
// from pools (in config order) and the Services' requests. taken, which
// may be nil, reports addresses unusable for reasons outside these
// Services (such as being on a host's interface); it must not report an
// address just because one of these Services holds it. The result has one
// Assignment per request, sorted by Service.
//
// Allocate is pure and deterministic: the order of reqs does not matter.
// It works in three passes over the Services, sorted by key:
//
//  1. Every Service keeps the Current addresses that are still valid: in
//     its pool (the named one, or any), of one of its families (one per
//     family), not special, not taken, and not held by a Service sorted
//     before it that it cannot share with. Claims come before any new
//     address is handed out, so a restart or a new leader changes nobody's
//     address and a newcomer never takes one in use. When two Services
//     claim the same address and cannot share it, the first by key wins:
//     with no other history to go by, that is the choice every run makes
//     again.
//  2. Requested addresses (Want) not yet held are claimed next, so a
//     Service that asks for an address is not beaten to it by one that
//     takes any; one held by a Service it cannot share with is refused.
//  3. Each Service then gets, per family, its requested address, else its
//     kept one, else an address its share key already holds (sharing is
//     the point of the key), else the lowest free address of the first
//     pool that has one. If anything fails, it gets nothing new and keeps
//     what it claimed in pass 1, so a bad edit is reported without
//     disturbing a running Service; a request that succeeds releases the
//     address it replaces.
//
// SingleStack uses only the first family. PreferDualStack needs the first
// family and takes the second only if a pool has one free; an explicit
// request that fails is an error for either. RequireDualStack needs both.
// Like internal/lb, every address of a prefix may be handed out, its IPv4
// network and broadcast addresses included, but never a special one
// (config.SpecialAddr).
func Allocate(pools []config.Pool, reqs []Request, taken func(netip.Addr) bool) []Assignment {
	sorted := slices.Clone(reqs)
	slices.SortStableFunc(sorted, func(a, b Request) int { return strings.Compare(a.Service, b.Service) })
	l := &ledger{taken: taken, held: make(map[netip.Addr][]*allotment), scans: make(map[netip.Prefix]*scan)}
	plans := make([]*allotment, len(sorted))
	for i := range sorted {
		if duplicated(sorted, i) {
			plans[i] = &allotment{req: &sorted[i], err: errorf(ReasonInvalidRequest, "Service %s is listed more than once", sorted[i].Service)}
		} else {
			plans[i] = l.newPlan(pools, &sorted[i])
		}
	}
	for _, p := range plans {
		l.keepCurrent(p)
	}
	for _, p := range plans {
		l.reserveWant(p)
	}
	out := make([]Assignment, len(plans))
	for i, p := range plans {
		out[i] = l.assign(p)
	}
	return out
}

// duplicated reports whether sorted[i] shares its key with a neighbour.
// Such requests all fail alike, so their order cannot matter.
func duplicated(sorted []Request, i int) bool {
	s := sorted[i].Service
	return (i > 0 && sorted[i-1].Service == s) || (i+1 < len(sorted) && sorted[i+1].Service == s)
}

// plan is a Request checked against the pools.
type allotment struct {
	req      *Request
	pools    []*config.Pool // where its addresses may come from, in config order
	families []Family       // what it needs, in order; nil if the request makes no sense
	want     map[Family]netip.Addr
	err      *Error                // a fault found before any address is compared with another Service's
	kept     map[Family]netip.Addr // what pass 1 let it keep
}

// newPlan checks r on its own: families, pool, and the requested addresses
// against the pools, the special blocks and taken.
func (l *ledger) newPlan(pools []config.Pool, r *Request) *allotment {
	p := &allotment{req: r, kept: make(map[Family]netip.Addr)}
	named := slices.IndexFunc(pools, func(q config.Pool) bool { return r.Pool != "" && q.Name == r.Pool })
	if named >= 0 {
		p.pools = []*config.Pool{&pools[named]}
	} else {
		// Pool-less, or naming a pool that does not exist: an address from
		// any pool is kept, so a mistyped annotation breaks nothing.
		for i := range pools {
			p.pools = append(p.pools, &pools[i])
		}
	}
	if p.families, p.err = familiesOf(r); p.err != nil {
		return p
	}
	switch {
	case r.Pool != "" && named < 0:
		p.err = errorf(ReasonNoSuchPool, "vipd.io/pool names pool %q, and there is no such pool", r.Pool)
	case len(pools) == 0:
		p.err = errorf(ReasonNoSuchPool, "no address pools are configured")
	default:
		p.want, p.err = l.checkWant(p)
	}
	return p
}

// familiesOf returns the families r needs, in order.
func familiesOf(r *Request) ([]Family, *Error) {
	fams := r.Families
	if len(fams) == 0 {
		fams = []Family{IPv4}
	}
	for i, f := range fams {
		if f != IPv4 && f != IPv6 {
			return nil, errorf(ReasonInvalidRequest, "spec.ipFamilies has unknown family %v", f)
		}
		if slices.Contains(fams[:i], f) {
			return nil, errorf(ReasonInvalidRequest, "spec.ipFamilies lists %v twice", f)
		}
	}
	switch r.Policy {
	case "", SingleStack:
		return fams[:1], nil
	case PreferDualStack:
		return fams, nil
	case RequireDualStack:
		if len(fams) < 2 {
			return nil, errorf(ReasonInvalidRequest, "spec.ipFamilyPolicy is RequireDualStack, and spec.ipFamilies lists only %v", fams[0])
		}
		return fams, nil
	}
	return nil, errorf(ReasonInvalidRequest, "spec.ipFamilyPolicy %q is not SingleStack, PreferDualStack or RequireDualStack", r.Policy)
}

// checkWant returns p's requested addresses by family, or why one cannot
// be had whoever else holds it.
func (l *ledger) checkWant(p *allotment) (map[Family]netip.Addr, *Error) {
	want := make(map[Family]netip.Addr)
	for _, a := range p.req.Want {
		f := familyOf(a)
		if !a.IsValid() {
			return nil, errorf(ReasonInvalidRequest, "a requested address is empty")
		}
		if !slices.Contains(p.families, f) {
			return nil, errorf(ReasonInvalidRequest, "requested address %s is %v, and the Service's families are %v", a, f, p.families)
		}
		if prev, ok := want[f]; ok {
			return nil, errorf(ReasonInvalidRequest, "two %v addresses are requested (%s and %s), and a Service has one per family", f, prev, a)
		}
		if poolHolding(p.pools, a) == nil {
			return nil, errorf(ReasonAddressNotAllowed, "requested address %s is not in %s", a, poolNames(p.pools))
		}
		if why := l.unfit(a); why != "" {
			return nil, errorf(ReasonAddressNotAllowed, "requested address %s cannot be used: %s", a, why)
		}
		want[f] = a
	}
	return want, nil
}

// ledger records who holds which address during one Allocate.
type ledger struct {
	taken func(netip.Addr) bool
	held  map[netip.Addr][]*allotment // in claim order; no empty entries
	scans map[netip.Prefix]*scan
}

// scan is where the search for a free address in a prefix resumes: every
// address below next is held, special or taken.
type scan struct {
	next  netip.Addr // invalid once the prefix is given up
	skips int        // special or taken addresses stepped over so far
}

// unfit says why a cannot be any Service's address, or "".
func (l *ledger) unfit(a netip.Addr) string {
	if what := config.SpecialAddr(a); what != "" {
		return "it is " + what
	}
	if l.taken != nil && l.taken(a) {
		return "it is in use outside these Services (for example on a host's interface)"
	}
	return ""
}

// keepCurrent claims p's valid Current addresses (pass 1).
func (l *ledger) keepCurrent(p *allotment) {
	for _, a := range p.req.Current {
		f := familyOf(a)
		if _, dup := p.kept[f]; dup || !a.IsValid() {
			continue
		}
		if p.families != nil && !slices.Contains(p.families, f) {
			continue
		}
		if poolHolding(p.pools, a) == nil || l.unfit(a) != "" || l.blocker(a, p) != nil {
			continue
		}
		p.kept[f] = a
		l.claim(a, p)
	}
}

// reserveWant claims the requested addresses p does not hold yet (pass
// 2), or fails p when another Service holds one and cannot share it.
func (l *ledger) reserveWant(p *allotment) {
	if p.err != nil {
		return
	}
	moves := p.moves()
	for _, a := range moves {
		if h := l.blocker(a, p); h != nil {
			p.err = errorf(ReasonAddressInUse, "requested address %s is held by Service %s: %s", a, h.req.Service, shareConflict(h.req, p.req))
			return
		}
	}
	for _, a := range moves {
		l.claim(a, p)
	}
}

// moves returns, in family order, the requested addresses p did not keep.
func (p *allotment) moves() []netip.Addr {
	var out []netip.Addr
	for _, f := range p.families {
		if want, ok := p.want[f]; ok && p.kept[f] != want {
			out = append(out, want)
		}
	}
	return out
}

// assign gives p its addresses (pass 3).
func (l *ledger) assign(p *allotment) Assignment {
	if p.err != nil {
		return p.failed(p.err)
	}
	picks := make([]netip.Addr, 0, len(p.families))
	for i, f := range p.families {
		a, err := l.choose(p, f)
		if err != nil {
			if i > 0 && p.req.Policy == PreferDualStack && err.Reason == ReasonPoolExhausted {
				continue
			}
			for _, m := range p.moves() {
				l.release(m, p)
			}
			return p.failed(err)
		}
		picks = append(picks, a)
	}
	for _, a := range p.kept {
		if !slices.Contains(picks, a) {
			l.release(a, p)
		}
	}
	for _, a := range picks {
		if !slices.Contains(l.held[a], p) {
			l.claim(a, p)
		}
	}
	return Assignment{Service: p.req.Service, Addrs: picks}
}

// failed is p's result when err stops it: only what it kept.
func (p *allotment) failed(err *Error) Assignment {
	var addrs []netip.Addr
	for _, a := range p.req.Current {
		if a.IsValid() && p.kept[familyOf(a)] == a && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return Assignment{Service: p.req.Service, Addrs: addrs, Err: err}
}

// choose returns p's address of family f: requested, kept, shared or
// fresh.
func (l *ledger) choose(p *allotment, f Family) (netip.Addr, *Error) {
	if want, ok := p.want[f]; ok {
		return want, nil
	}
	if kept, ok := p.kept[f]; ok {
		return kept, nil
	}
	if a, ok := l.join(p, f); ok {
		return a, nil
	}
	for _, pool := range p.pools {
		for _, pfx := range pool.Prefixes {
			if familyOf(pfx.Addr()) != f {
				continue
			}
			if a, ok := l.lowestFree(pfx); ok {
				return a, nil
			}
		}
	}
	if p.req.Pool != "" {
		return netip.Addr{}, errorf(ReasonPoolExhausted, "pool %q has no free %v address", p.req.Pool, f)
	}
	return netip.Addr{}, errorf(ReasonPoolExhausted, "no pool has a free %v address (%s)", f, poolNames(p.pools))
}

// join returns the lowest address of family f, in the first of p's pools
// that has one, that Services with p's share key hold and p may share.
func (l *ledger) join(p *allotment, f Family) (netip.Addr, bool) {
	if p.req.ShareKey == "" {
		return netip.Addr{}, false
	}
	for _, pool := range p.pools {
		var best netip.Addr
		for a := range l.held {
			if familyOf(a) == f && (!best.IsValid() || a.Less(best)) && inPool(pool, a) && l.blocker(a, p) == nil {
				best = a
			}
		}
		if best.IsValid() {
			return best, true
		}
	}
	return netip.Addr{}, false
}

// lowestFree returns the lowest address of pfx that nobody holds and that
// is fit. It resumes where the last search in pfx stopped, so handing out
// a whole /16 costs one pass over it, and a /64 is never enumerated.
func (l *ledger) lowestFree(pfx netip.Prefix) (netip.Addr, bool) {
	s := l.scans[pfx]
	if s == nil {
		s = &scan{next: pfx.Masked().Addr()}
		l.scans[pfx] = s
	}
	for s.next.IsValid() && pfx.Contains(s.next) {
		a := s.next
		switch {
		case len(l.held[a]) > 0:
		case l.unfit(a) == "":
			return a, true
		case s.skips == maxUnfitSkips:
			s.next = netip.Addr{}
			return netip.Addr{}, false
		default:
			s.skips++
		}
		s.next = a.Next()
	}
	return netip.Addr{}, false
}

// blocker returns the first holder of a that p cannot share it with.
func (l *ledger) blocker(a netip.Addr, p *allotment) *allotment {
	for _, h := range l.held[a] {
		if h != p && shareConflict(h.req, p.req) != "" {
			return h
		}
	}
	return nil
}

func (l *ledger) claim(a netip.Addr, p *allotment) {
	l.held[a] = append(l.held[a], p)
}

// release drops p's hold on a and lets the scans of a's prefixes look at
// it again.
func (l *ledger) release(a netip.Addr, p *allotment) {
	l.held[a] = slices.DeleteFunc(l.held[a], func(h *allotment) bool { return h == p })
	if len(l.held[a]) > 0 {
		return
	}
	delete(l.held, a)
	for pfx, s := range l.scans {
		if pfx.Contains(a) && (!s.next.IsValid() || !pfx.Contains(s.next) || a.Less(s.next)) {
			s.next = a
		}
	}
}

// shareConflict says why Services a and b cannot share an address, or ""
// when they can: the same non-empty share key, and no protocol and port in
// common.
func shareConflict(a, b *Request) string {
	switch {
	case a.ShareKey == "" || b.ShareKey == "":
		return "sharing needs the same vipd.io/allow-shared-ip on both"
	case a.ShareKey != b.ShareKey:
		return fmt.Sprintf("their vipd.io/allow-shared-ip differ (%q and %q)", a.ShareKey, b.ShareKey)
	}
	for _, pa := range a.Ports {
		if slices.Contains(b.Ports, pa) {
			return fmt.Sprintf("both use port %v", pa)
		}
	}
	return ""
}

func poolHolding(pools []*config.Pool, a netip.Addr) *config.Pool {
	for _, p := range pools {
		if inPool(p, a) {
			return p
		}
	}
	return nil
}

func inPool(p *config.Pool, a netip.Addr) bool {
	return slices.ContainsFunc(p.Prefixes, func(pfx netip.Prefix) bool { return pfx.Contains(a) })
}

// poolNames names pools for a message: `pool "a"` or `pools "a", "b"`.
func poolNames(pools []*config.Pool) string {
	if len(pools) == 1 {
		return fmt.Sprintf("pool %q", pools[0].Name)
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = fmt.Sprintf("%q", p.Name)
	}
	return "pools " + strings.Join(names, ", ")
}
