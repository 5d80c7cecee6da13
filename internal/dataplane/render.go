package dataplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/maglev"
)

// tableName is the nftables table vipd owns (family inet).
const tableName = "vipd"

// hashSeed is the jhash seed of every flow hash. It is fixed so that all
// nodes (and all rules) hash a flow alike; like maglev.TableSize, changing
// it makes nodes running different versions disagree.
const hashSeed = 0x76697064 // "vipd"

// Chain names.
const (
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainPortFilter     = "port-filter"
	chainServices       = "services"
)

// Per-load-balancer objects are called lbPrefix+ID (the chain) and
// lbPrefix+ID+maglevSuffix (its Maglev map).
const (
	lbPrefix     = "lb-"
	maglevSuffix = "-maglev"
)

// tableComment tells an operator listing the ruleset who owns the table.
const tableComment = "vipd load balancers and port filters; rewritten by vipd, do not edit"

// baseChains are the chains packets enter the table through.
var baseChains = []knftables.Chain{
	{Name: chainNATPrerouting, Type: ptr(knftables.NATType), Hook: ptr(knftables.PreroutingHook), Priority: ptr(knftables.DNATPriority)},
	{Name: chainNATOutput, Type: ptr(knftables.NATType), Hook: ptr(knftables.OutputHook), Priority: ptr(knftables.DNATPriority)},
	{Name: chainNATPostrouting, Type: ptr(knftables.NATType), Hook: ptr(knftables.PostroutingHook), Priority: ptr(knftables.SNATPriority)},
	// Before DNAT, so it sees the port the client asked for.
	{Name: chainPortFilter, Type: ptr(knftables.FilterType), Hook: ptr(knftables.PreroutingHook), Priority: ptr(knftables.DNATPriority + " - 10")},
}

func ptr[T any](v T) *T { return &v }

// slotter is how a load balancer's flows are spread: size slots, filled
// by table. Production uses Maglev; tests use smaller tables, as knftables'
// fake needs seconds for a map of maglev.TableSize elements.
type slotter struct {
	size  int
	table func([]maglev.Backend) []int // len size; nil: no backend
}

var maglevSlots = slotter{size: maglev.TableSize, table: maglev.Table}

// family holds the per-address-family words and names of the ruleset.
type family struct {
	ip         string // nft protocol keyword: ip or ip6
	addrType   string // nft address type
	services   string // verdict map: daddr . l4proto . dport -> goto lb-ID
	masquerade string // set of daddr . l4proto . dport to masquerade
	filtered   string // set of filtered addresses
	allowed    string // set of daddr . l4proto . dport a filter lets through
}

var (
	ipv4 = family{ip: "ip", addrType: "ipv4_addr", services: "services4", masquerade: "masquerade4", filtered: "filtered4", allowed: "allowed4"}
	ipv6 = family{ip: "ip6", addrType: "ipv6_addr", services: "services6", masquerade: "masquerade6", filtered: "filtered6", allowed: "allowed6"}
)

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

// staticObjects are the table's fixed chains, sets, maps and rules, in an
// order nft accepts.
func staticObjects() []knftables.Object {
	var objs []knftables.Object
	for _, c := range baseChains {
		objs = append(objs, &c)
	}
	objs = append(objs, &knftables.Chain{Name: chainServices})
	for _, f := range []family{ipv4, ipv6} {
		tuple := f.addrType + " . inet_proto . inet_service"
		objs = append(objs,
			&knftables.Map{Name: f.services, Type: tuple + " : verdict"},
			&knftables.Set{Name: f.masquerade, Type: tuple},
			&knftables.Set{Name: f.filtered, Type: f.addrType},
			&knftables.Set{Name: f.allowed, Type: tuple},
		)
	}
	rule := func(chain, rule string) { objs = append(objs, &knftables.Rule{Chain: chain, Rule: rule}) }
	rule(chainNATPrerouting, "jump "+chainServices)
	rule(chainNATOutput, "jump "+chainServices)
	rule(chainPortFilter, "iif lo accept")
	rule(chainPortFilter, "ct state established,related accept")
	for _, f := range []family{ipv4, ipv6} {
		rule(chainServices, knftables.Concat(f.ip, "daddr . meta l4proto . th dport vmap", "@"+f.services))
		// The original destination is the load balancer's address and
		// port; a set lookup on a ct proto-dst concatenation needs the
		// l4proto match before it.
		rule(chainNATPostrouting, knftables.Concat("ct status dnat meta l4proto { tcp, udp }",
			"ct original", f.ip, "daddr . meta l4proto . ct original proto-dst", "@"+f.masquerade, "masquerade"))
		rule(chainPortFilter, knftables.Concat("meta l4proto { tcp, udp }", f.ip, "daddr", "@"+f.filtered,
			f.ip, "daddr . meta l4proto . th dport !=", "@"+f.allowed, "drop"))
	}
	return objs
}

// ruleset is the rendered, validated State: what the table holds after a
// successful Set, kept so that the next Set can write only the changes.
type ruleset struct {
	lbs      map[string]*lbRules           // by ID
	elements map[string]*knftables.Element // of the static sets and maps, by elementKey
	flows    map[flow]struct{}             // every backend, drained ones too
}

// lbRules is one load balancer's chain and Maglev map.
type lbRules struct {
	id       string
	family   family
	size     int // slots
	rules    []*knftables.Rule
	backends []netip.AddrPort
	slots    []int // maglev: slot -> index into backends; nil: no backend
}

func (l *lbRules) chain() string     { return lbPrefix + l.id }
func (l *lbRules) maglevMap() string { return lbPrefix + l.id + maglevSuffix }

// slot returns the backend of slot i; the zero AddrPort if there is none.
func (l *lbRules) slot(i int) netip.AddrPort {
	if l.slots == nil {
		return netip.AddrPort{}
	}
	return l.backends[l.slots[i]]
}

// plan validates s and renders it.
func plan(s State, sl slotter) (*ruleset, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &ruleset{
		lbs:      make(map[string]*lbRules, len(s.LoadBalancers)),
		elements: make(map[string]*knftables.Element),
		flows:    make(map[flow]struct{}),
	}
	allowed := make(map[netip.Addr][]*knftables.Element)
	for _, l := range s.LoadBalancers {
		lr := renderLB(l, sl)
		r.lbs[l.ID] = lr
		f := lr.family
		tuple := []string{l.Address.String(), string(l.Protocol), strconv.Itoa(int(l.Port))}
		r.add(&knftables.Element{Map: f.services, Key: tuple, Value: []string{"goto " + lr.chain()}})
		if l.Masquerade {
			r.add(&knftables.Element{Set: f.masquerade, Key: tuple})
		}
		allowed[l.Address] = append(allowed[l.Address], &knftables.Element{Set: f.allowed, Key: tuple})
		vip := netip.AddrPortFrom(l.Address, l.Port)
		for _, b := range l.Backends {
			r.flows[newFlow(l.Protocol, vip, b.Addr)] = struct{}{}
		}
	}
	for _, pf := range s.Filters {
		f := familyOf(pf.Address)
		r.add(&knftables.Element{Set: f.filtered, Key: []string{pf.Address.String()}})
		for _, p := range pf.Ports {
			for _, proto := range []lb.Protocol{lb.TCP, lb.UDP} {
				r.add(&knftables.Element{Set: f.allowed, Key: []string{pf.Address.String(), string(proto), strconv.Itoa(int(p))}})
			}
		}
		for _, e := range allowed[pf.Address] {
			r.add(e)
		}
	}
	return r, nil
}

// renderLB renders one valid load balancer.
func renderLB(l LoadBalancer, sl slotter) *lbRules {
	lr := &lbRules{id: l.ID, family: familyOf(l.Address), size: sl.size}
	mb := make([]maglev.Backend, len(l.Backends))
	for i, b := range l.Backends {
		lr.backends = append(lr.backends, b.Addr)
		mb[i] = maglev.Backend{Key: b.Addr.String(), Weight: b.Weight}
	}
	lr.slots = sl.table(mb)
	ip := lr.family.ip
	lr.rules = []*knftables.Rule{
		{
			Chain: lr.chain(),
			Rule: knftables.Concat("meta l4proto", l.Protocol, "dnat", ip, "to jhash", ip, "saddr . th sport",
				"mod", sl.size, "seed", fmt.Sprintf("%#x", hashSeed), "map", "@"+lr.maglevMap()),
			// For an operator reading the ruleset.
			Comment: ptr(fmt.Sprintf("%s %s %s", netip.AddrPortFrom(l.Address, l.Port), l.Protocol, l.Mode)),
		},
		// Reached only when the slot is empty: no backend.
		{Chain: lr.chain(), Rule: "drop"},
	}
	return lr
}

func elementKey(e *knftables.Element) string {
	return e.Set + e.Map + " " + strings.Join(e.Key, " . ")
}

func (r *ruleset) add(e *knftables.Element) { r.elements[elementKey(e)] = e }

// extends reports whether r can be written as changes to old, given the
// load balancers removed earlier whose emptied chains and maps are still
// in the table (retired). A map's type cannot change, so a load balancer
// that changes address family needs the table rewritten, and so does one
// that comes back while its old objects wait to be deleted (rare: IDs are
// UUIDs).
func (r *ruleset) extends(old *ruleset, retired map[string]retiredLB) bool {
	for id, ol := range old.lbs {
		if l, ok := r.lbs[id]; ok && l.family != ol.family {
			return false
		}
	}
	for id := range r.lbs {
		if _, ok := retired[id]; ok {
			return false
		}
	}
	return true
}

// writeAll adds to tx what replaces the table, whatever it holds, by r.
func (r *ruleset) writeAll(tx *knftables.Transaction) {
	// Adding first makes the delete succeed on a host without the table.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: ptr(tableComment)})
	for _, o := range staticObjects() {
		tx.Add(o)
	}
	for _, l := range r.sortedLBs() {
		l.write(tx, nil)
	}
	for _, k := range sortedKeys(r.elements) {
		tx.Add(r.elements[k])
	}
}

// writeChanges adds to tx what turns the table from old into r; old must
// be what the kernel holds, and r must extend it. A load balancer that
// went away has its chain and map flushed, not deleted (see retireAfter);
// it returns those, for a later transaction to delete. Rewriting the whole
// table instead would cost a second or more with a few dozen load
// balancers of maglev.TableSize slots each.
func (r *ruleset) writeChanges(tx *knftables.Transaction, old *ruleset) (gone []*lbRules) {
	for _, k := range sortedKeys(old.elements) {
		if e, ok := r.elements[k]; !ok || !slices.Equal(e.Value, old.elements[k].Value) {
			tx.Delete(old.elements[k])
		}
	}
	// After the verdict map elements that jump to them are gone.
	for _, ol := range old.sortedLBs() {
		if _, ok := r.lbs[ol.id]; !ok {
			tx.Flush(&knftables.Chain{Name: ol.chain()})
			tx.Flush(&knftables.Map{Name: ol.maglevMap()})
			gone = append(gone, ol)
		}
	}
	// Chains before the verdict map elements that jump to them.
	for _, l := range r.sortedLBs() {
		l.write(tx, old.lbs[l.id])
	}
	for _, k := range sortedKeys(r.elements) {
		if e, ok := old.elements[k]; !ok || !slices.Equal(e.Value, r.elements[k].Value) {
			tx.Add(r.elements[k])
		}
	}
	return gone
}

// write adds to tx what makes the load balancer's objects hold l, given
// that they hold old (nil: they do not exist).
func (l *lbRules) write(tx *knftables.Transaction, old *lbRules) {
	if old == nil {
		tx.Add(&knftables.Chain{Name: l.chain()})
		tx.Add(&knftables.Map{
			Name: l.maglevMap(),
			// Keys are Maglev slots, the result of the jhash in the rule;
			// nft has no type name for a plain 32-bit integer.
			TypeOf: fmt.Sprintf("numgen inc mod %d : %s daddr . th dport", l.size, l.family.ip),
		})
	}
	if old == nil || !slices.EqualFunc(l.rules, old.rules, sameRule) {
		if old != nil {
			tx.Flush(&knftables.Chain{Name: l.chain()})
		}
		for _, rule := range l.rules {
			tx.Add(rule)
		}
	}
	// An element's value cannot be changed in place: delete, then add.
	var changed []int
	for i := range l.size {
		if old == nil || l.slot(i) != old.slot(i) {
			changed = append(changed, i)
		}
	}
	for _, i := range changed {
		if old != nil && old.slot(i).IsValid() {
			tx.Delete(&knftables.Element{Map: l.maglevMap(), Key: []string{strconv.Itoa(i)}})
		}
	}
	for _, i := range changed {
		if b := l.slot(i); b.IsValid() {
			tx.Add(&knftables.Element{
				Map:   l.maglevMap(),
				Key:   []string{strconv.Itoa(i)},
				Value: []string{b.Addr().String() + " . " + strconv.Itoa(int(b.Port()))},
			})
		}
	}
}

func sameRule(a, b *knftables.Rule) bool {
	return a.Rule == b.Rule && (a.Comment == nil) == (b.Comment == nil) && (a.Comment == nil || *a.Comment == *b.Comment)
}

func (r *ruleset) sortedLBs() []*lbRules {
	lbs := make([]*lbRules, 0, len(r.lbs))
	for _, l := range r.lbs {
		lbs = append(lbs, l)
	}
	slices.SortFunc(lbs, func(a, b *lbRules) int { return cmp.Compare(a.id, b.id) })
	return lbs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
