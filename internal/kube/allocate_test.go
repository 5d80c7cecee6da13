package kube

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func pool(name string, prefixes ...string) config.Pool {
	p := config.Pool{Name: name}
	for _, s := range prefixes {
		p.Prefixes = append(p.Prefixes, netip.MustParsePrefix(s))
	}
	return p
}

func takenSet(ss ...string) func(netip.Addr) bool {
	if len(ss) == 0 {
		return nil
	}
	set := addrs(ss...)
	return func(a netip.Addr) bool { return slices.Contains(set, a) }
}

var (
	// Four IPv4 addresses and four IPv6 ones.
	poolA = pool("a", "10.0.0.0/30", "fd00::/126")
	// Two IPv4 addresses.
	poolB = pool("b", "10.0.1.0/31")
	// Written before config refused special blocks: nothing in it is fit.
	poolStale = pool("stale", "127.0.0.0/30")
	http      = []Port{{"TCP", 80}}
	https     = []Port{{"TCP", 443}}
	dns       = []Port{{"UDP", 53}}
)

// summary is an Assignment as one readable line:
// "ns/a: 10.0.0.0 fd00::" or "ns/b: PoolExhausted [10.0.0.1]" (what it keeps).
func summary(a Assignment) string {
	var b strings.Builder
	b.WriteString(a.Service + ":")
	if a.Err != nil {
		b.WriteString(" " + string(a.Err.Reason))
		if len(a.Addrs) > 0 {
			fmt.Fprintf(&b, " %v", a.Addrs)
		}
		return b.String()
	}
	for _, x := range a.Addrs {
		b.WriteString(" " + x.String())
	}
	return b.String()
}

func summaries(as []Assignment) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = summary(a)
	}
	return out
}

type allocCase struct {
	name  string
	pools []config.Pool
	taken []string
	reqs  []Request
	want  []string          // summaries, sorted by Service
	msgs  map[string]string // Service: a substring its error message must have
}

func runCases(t *testing.T, cases []allocCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Allocate(tc.pools, tc.reqs, takenSet(tc.taken...))
			if diff := cmp.Diff(tc.want, summaries(got)); diff != "" {
				t.Fatalf("Allocate (-want +got):\n%s", diff)
			}
			for _, a := range got {
				if a.Err != nil && !strings.Contains(a.Err.Message, tc.msgs[a.Service]) {
					t.Errorf("%s: message %q does not say %q", a.Service, a.Err.Message, tc.msgs[a.Service])
				}
			}
			for svc := range tc.msgs {
				if !slices.ContainsFunc(got, func(a Assignment) bool { return a.Service == svc && a.Err != nil }) {
					t.Errorf("%s: expected an error", svc)
				}
			}
			checkOrderFree(t, tc.pools, tc.reqs, takenSet(tc.taken...), got)
			checkRestart(t, tc.pools, tc.reqs, takenSet(tc.taken...), got)
		})
	}
}

// checkOrderFree checks rule 1: shuffled requests give the same result.
func checkOrderFree(t *testing.T, pools []config.Pool, reqs []Request, taken func(netip.Addr) bool, want []Assignment) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := slices.Clone(reqs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(summaries(want), summaries(Allocate(pools, shuffled, taken))); diff != "" {
			t.Fatalf("shuffled requests (-first +shuffled):\n%s", diff)
		}
	}
}

// checkRestart checks rule 2: a new leader that reads back the statuses
// written (as Current), in another order, changes no Service that got its
// addresses.
func checkRestart(t *testing.T, pools []config.Pool, reqs []Request, taken func(netip.Addr) bool, first []Assignment) {
	t.Helper()
	again := restarted(reqs, first)
	slices.Reverse(again)
	second := Allocate(pools, again, taken)
	for i, a := range first {
		if a.Err == nil && !slices.Equal(a.Addrs, second[i].Addrs) {
			t.Errorf("after a restart %s moved from %v to %v", a.Service, a.Addrs, second[i].Addrs)
		}
	}
}

// restarted returns reqs whose Current is what out assigned them.
func restarted(reqs []Request, out []Assignment) []Request {
	again := slices.Clone(reqs)
	for i := range again {
		j := slices.IndexFunc(out, func(a Assignment) bool { return a.Service == again[i].Service })
		again[i].Current = out[j].Addrs
	}
	return again
}

func TestAllocateLowestFree(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "in key order, network address included like internal/lb",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/c"}, {Service: "ns/a"}, {Service: "ns/b"}},
		want:  []string{"ns/a: 10.0.0.0", "ns/b: 10.0.0.1", "ns/c: 10.0.0.2"},
	}, {
		name:  "special addresses of a stale pool are skipped",
		pools: []config.Pool{pool("p", "127.0.0.0/31", "10.0.0.5/32")},
		reqs:  []Request{{Service: "ns/a"}},
		want:  []string{"ns/a: 10.0.0.5"},
	}, {
		name:  "taken addresses are skipped",
		pools: []config.Pool{poolA},
		taken: []string{"10.0.0.0", "10.0.0.2"},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/b"}},
		want:  []string{"ns/a: 10.0.0.1", "ns/b: 10.0.0.3"},
	}, {
		name:  "prefixes in config order",
		pools: []config.Pool{pool("p", "10.0.9.0/32", "10.0.1.0/32")},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/b"}},
		want:  []string{"ns/a: 10.0.9.0", "ns/b: 10.0.1.0"},
	}, {
		name:  "a full first pool spills into the next",
		pools: []config.Pool{poolB, poolA},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/b"}, {Service: "ns/c"}},
		want:  []string{"ns/a: 10.0.1.0", "ns/b: 10.0.1.1", "ns/c: 10.0.0.0"},
	}, {
		name:  "a named pool only",
		pools: []config.Pool{poolA, poolB},
		reqs:  []Request{{Service: "ns/a", Pool: "b"}},
		want:  []string{"ns/a: 10.0.1.0"},
	}, {
		name:  "the address of the last IPv4 prefix",
		pools: []config.Pool{pool("p", "223.255.255.254/32")},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/b"}},
		want:  []string{"ns/a: 223.255.255.254", "ns/b: PoolExhausted"},
		msgs:  map[string]string{"ns/b": `no pool has a free IPv4 address (pool "p")`},
	}})
}

func TestAllocatePools(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "no such pool",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Pool: "nope"}, {Service: "ns/b"}},
		want:  []string{"ns/a: NoSuchPool", "ns/b: 10.0.0.0"},
		msgs:  map[string]string{"ns/a": `vipd.io/pool names pool "nope"`},
	}, {
		name: "no pools at all",
		reqs: []Request{{Service: "ns/a", Current: addrs("10.0.0.1")}},
		want: []string{"ns/a: NoSuchPool"},
		msgs: map[string]string{"ns/a": "no address pools are configured"},
	}, {
		name:  "an exhausted pool fails only its own Services",
		pools: []config.Pool{poolA, poolB},
		reqs: []Request{
			{Service: "ns/b1", Pool: "b"}, {Service: "ns/b2", Pool: "b"}, {Service: "ns/b3", Pool: "b"},
			{Service: "ns/c", Pool: "a"}, {Service: "ns/d"},
		},
		want: []string{"ns/b1: 10.0.1.0", "ns/b2: 10.0.1.1", "ns/b3: PoolExhausted", "ns/c: 10.0.0.0", "ns/d: 10.0.0.1"},
		msgs: map[string]string{"ns/b3": `pool "b" has no free IPv4 address`},
	}, {
		name:  "duplicate keys fail alike",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/a", Pool: "a"}, {Service: "ns/b"}},
		want:  []string{"ns/a: InvalidRequest", "ns/a: InvalidRequest", "ns/b: 10.0.0.0"},
		msgs:  map[string]string{"ns/a": "listed more than once"},
	}})
}

func TestAllocateRequested(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "granted, and skipped by the next",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/b", Want: addrs("10.0.0.0")}, {Service: "ns/a"}},
		want:  []string{"ns/a: 10.0.0.1", "ns/b: 10.0.0.0"},
	}, {
		name:  "outside every pool",
		pools: []config.Pool{poolA, poolB},
		reqs:  []Request{{Service: "ns/a", Want: addrs("192.0.2.1")}},
		want:  []string{"ns/a: AddressNotAllowed"},
		msgs:  map[string]string{"ns/a": `192.0.2.1 is not in pools "a", "b"`},
	}, {
		name:  "outside the named pool",
		pools: []config.Pool{poolA, poolB},
		reqs:  []Request{{Service: "ns/a", Pool: "b", Want: addrs("10.0.0.1")}},
		want:  []string{"ns/a: AddressNotAllowed"},
		msgs:  map[string]string{"ns/a": `10.0.0.1 is not in pool "b"`},
	}, {
		name:  "special",
		pools: []config.Pool{poolStale},
		reqs:  []Request{{Service: "ns/a", Want: addrs("127.0.0.1")}},
		want:  []string{"ns/a: AddressNotAllowed"},
		msgs:  map[string]string{"ns/a": "127.0.0.1 cannot be used: it is loopback"},
	}, {
		name:  "taken",
		pools: []config.Pool{poolA},
		taken: []string{"10.0.0.2"},
		reqs:  []Request{{Service: "ns/a", Want: addrs("10.0.0.2")}},
		want:  []string{"ns/a: AddressNotAllowed"},
		msgs:  map[string]string{"ns/a": "10.0.0.2 cannot be used: it is in use outside these Services"},
	}, {
		name:  "held by a Service that does not share",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Want: addrs("10.0.0.3")}, {Service: "ns/z", Current: addrs("10.0.0.3")}},
		want:  []string{"ns/a: AddressInUse", "ns/z: 10.0.0.3"},
		msgs:  map[string]string{"ns/a": "10.0.0.3 is held by Service ns/z: sharing needs the same vipd.io/allow-shared-ip"},
	}, {
		name:  "wanted by two: the first by key",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/b", Want: addrs("10.0.0.3")}, {Service: "ns/a", Want: addrs("10.0.0.3")}},
		want:  []string{"ns/a: 10.0.0.3", "ns/b: AddressInUse"},
		msgs:  map[string]string{"ns/b": "held by Service ns/a"},
	}, {
		name:  "two of one family",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Want: addrs("10.0.0.1", "10.0.0.2")}},
		want:  []string{"ns/a: InvalidRequest"},
		msgs:  map[string]string{"ns/a": "two IPv4 addresses are requested (10.0.0.1 and 10.0.0.2)"},
	}, {
		name:  "of a family the Service does not have",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Want: addrs("fd00::1")}},
		want:  []string{"ns/a: InvalidRequest"},
		msgs:  map[string]string{"ns/a": "fd00::1 is IPv6, and the Service's families are [IPv4]"},
	}, {
		name:  "moving to a requested address frees the old one",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Current: addrs("10.0.0.0"), Want: addrs("10.0.0.2")}, {Service: "ns/b"}},
		want:  []string{"ns/a: 10.0.0.2", "ns/b: 10.0.0.0"},
	}})
}

func TestAllocateKeepsCurrent(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "kept though lower ones are free",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Current: addrs("10.0.0.2")}},
		want:  []string{"ns/a: 10.0.0.2"},
	}, {
		name:  "a newcomer sorted first does not take it",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a"}, {Service: "ns/b", Current: addrs("10.0.0.0")}},
		want:  []string{"ns/a: 10.0.0.1", "ns/b: 10.0.0.0"},
	}, {
		name:  "claimed by two: the first by key keeps it",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/b", Current: addrs("10.0.0.2")}, {Service: "ns/a", Current: addrs("10.0.0.2")}},
		want:  []string{"ns/a: 10.0.0.2", "ns/b: 10.0.0.0"},
	}, {
		name:  "outside the pools now",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Current: addrs("10.9.9.9")}},
		want:  []string{"ns/a: 10.0.0.0"},
	}, {
		name:  "moved to another pool",
		pools: []config.Pool{poolA, poolB},
		reqs:  []Request{{Service: "ns/a", Pool: "b", Current: addrs("10.0.0.3")}},
		want:  []string{"ns/a: 10.0.1.0"},
	}, {
		name:  "taken now",
		pools: []config.Pool{poolA},
		taken: []string{"10.0.0.1"},
		reqs:  []Request{{Service: "ns/a", Current: addrs("10.0.0.1")}},
		want:  []string{"ns/a: 10.0.0.0"},
	}, {
		name:  "special in a stale pool",
		pools: []config.Pool{poolStale, poolB},
		reqs:  []Request{{Service: "ns/a", Current: addrs("127.0.0.1")}},
		want:  []string{"ns/a: 10.0.1.0"},
	}, {
		name:  "a family dropped",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv6}, Current: addrs("10.0.0.2", "fd00::2")}},
		want:  []string{"ns/a: fd00::2"},
	}, {
		name:  "one per family",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Current: addrs("10.0.0.2", "10.0.0.1")}, {Service: "ns/b"}},
		want:  []string{"ns/a: 10.0.0.2", "ns/b: 10.0.0.0"},
	}})
}

// Rule 9: a bad edit is reported, and the running address stays.
func TestAllocateFailureKeepsCurrent(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "requested address outside the pools",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Want: addrs("192.0.2.1"), Current: addrs("10.0.0.2")}, {Service: "ns/b"}},
		want:  []string{"ns/a: AddressNotAllowed [10.0.0.2]", "ns/b: 10.0.0.0"},
		msgs:  map[string]string{"ns/a": "192.0.2.1 is not in pool"},
	}, {
		name:  "requested address in use",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Want: addrs("10.0.0.3"), Current: addrs("10.0.0.2")}, {Service: "ns/b", Current: addrs("10.0.0.3")}},
		want:  []string{"ns/a: AddressInUse [10.0.0.2]", "ns/b: 10.0.0.3"},
		msgs:  map[string]string{"ns/a": "held by Service ns/b"},
	}, {
		name:  "pool annotation mistyped",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Pool: "aa", Current: addrs("10.0.0.2")}},
		want:  []string{"ns/a: NoSuchPool [10.0.0.2]"},
		msgs:  map[string]string{"ns/a": `"aa"`},
	}, {
		name:  "unknown policy",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Policy: "Both", Current: addrs("fd00::1", "10.0.0.2")}},
		want:  []string{"ns/a: InvalidRequest [fd00::1 10.0.0.2]"},
		msgs:  map[string]string{"ns/a": `spec.ipFamilyPolicy "Both"`},
	}, {
		name:  "second family exhausted under RequireDualStack",
		pools: []config.Pool{pool("p", "10.0.0.0/30", "fd00::/128")},
		reqs: []Request{
			{Service: "ns/a", Families: []Family{IPv6}, Current: addrs("fd00::")},
			{Service: "ns/b", Families: []Family{IPv4, IPv6}, Policy: RequireDualStack, Current: addrs("10.0.0.1")},
		},
		want: []string{"ns/a: fd00::", "ns/b: PoolExhausted [10.0.0.1]"},
		msgs: map[string]string{"ns/b": "has a free IPv6 address"},
	}})
}

func TestAllocateFamilies(t *testing.T) {
	v4only := pool("v4", "10.0.0.0/32")
	v6only := pool("v6", "fd00::/127")
	runCases(t, []allocCase{{
		name:  "IPv6 single stack",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv6}}},
		want:  []string{"ns/a: fd00::"},
	}, {
		name:  "SingleStack uses the first family only",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv6, IPv4}, Policy: SingleStack}},
		want:  []string{"ns/a: fd00::"},
	}, {
		name:  "dual stack in the Service's order, families from different pools",
		pools: []config.Pool{v4only, v6only},
		reqs: []Request{
			{Service: "ns/a", Families: []Family{IPv6, IPv4}, Policy: PreferDualStack},
			{Service: "ns/b", Families: []Family{IPv4, IPv6}, Policy: RequireDualStack},
		},
		want: []string{"ns/a: fd00:: 10.0.0.0", "ns/b: PoolExhausted"},
		msgs: map[string]string{"ns/b": "no pool has a free IPv4 address"},
	}, {
		name:  "PreferDualStack does without the second family",
		pools: []config.Pool{v4only, v6only},
		reqs: []Request{
			{Service: "ns/a", Families: []Family{IPv6}},
			{Service: "ns/b", Families: []Family{IPv6}},
			{Service: "ns/c", Families: []Family{IPv4, IPv6}, Policy: PreferDualStack},
		},
		want: []string{"ns/a: fd00::", "ns/b: fd00::1", "ns/c: 10.0.0.0"},
	}, {
		name:  "PreferDualStack needs the first family",
		pools: []config.Pool{v6only},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv4, IPv6}, Policy: PreferDualStack}},
		want:  []string{"ns/a: PoolExhausted"},
		msgs:  map[string]string{"ns/a": "IPv4"},
	}, {
		name:  "PreferDualStack fails on a bad request for the second family",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv4, IPv6}, Policy: PreferDualStack, Want: addrs("fd01::1")}},
		want:  []string{"ns/a: AddressNotAllowed"},
		msgs:  map[string]string{"ns/a": "fd01::1"},
	}, {
		name:  "PreferDualStack with one family listed",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv6}, Policy: PreferDualStack}},
		want:  []string{"ns/a: fd00::"},
	}, {
		name:  "RequireDualStack with one family listed",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv4}, Policy: RequireDualStack}},
		want:  []string{"ns/a: InvalidRequest"},
		msgs:  map[string]string{"ns/a": "lists only IPv4"},
	}, {
		name:  "a family twice",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv4, IPv4}, Policy: PreferDualStack}},
		want:  []string{"ns/a: InvalidRequest"},
		msgs:  map[string]string{"ns/a": "lists IPv4 twice"},
	}, {
		name:  "an unknown family",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{0}}},
		want:  []string{"ns/a: InvalidRequest"},
		msgs:  map[string]string{"ns/a": "unknown family Family(0)"},
	}, {
		name:  "requested for one family, allocated for the other",
		pools: []config.Pool{poolA},
		reqs:  []Request{{Service: "ns/a", Families: []Family{IPv4, IPv6}, Policy: RequireDualStack, Want: addrs("fd00::3")}},
		want:  []string{"ns/a: 10.0.0.0 fd00::3"},
	}})
}

func TestAllocateSharing(t *testing.T) {
	runCases(t, []allocCase{{
		name:  "same key, other ports: joins, even with a lower address free",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http, Current: addrs("10.0.0.2")},
			{Service: "ns/b", ShareKey: "k", Ports: https},
			{Service: "ns/c", ShareKey: "k", Ports: []Port{{"UDP", 80}}},
		},
		want: []string{"ns/a: 10.0.0.2", "ns/b: 10.0.0.2", "ns/c: 10.0.0.2"},
	}, {
		name:  "same key, a port clash: a fresh address",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http},
			{Service: "ns/b", ShareKey: "k", Ports: append(slices.Clone(dns), http...)},
		},
		want: []string{"ns/a: 10.0.0.0", "ns/b: 10.0.0.1"},
	}, {
		name:  "other key or none: a fresh address",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http},
			{Service: "ns/b", ShareKey: "j", Ports: https},
			{Service: "ns/c", Ports: dns},
		},
		want: []string{"ns/a: 10.0.0.0", "ns/b: 10.0.0.1", "ns/c: 10.0.0.2"},
	}, {
		name:  "joins the lowest shareable address of the first pool",
		pools: []config.Pool{poolA, poolB},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http, Current: addrs("10.0.1.0")},
			{Service: "ns/b", ShareKey: "k", Ports: http, Current: addrs("10.0.0.3")},
			{Service: "ns/c", ShareKey: "k", Ports: http, Current: addrs("10.0.0.2")},
			{Service: "ns/d", ShareKey: "k", Ports: https},
		},
		want: []string{"ns/a: 10.0.1.0", "ns/b: 10.0.0.3", "ns/c: 10.0.0.2", "ns/d: 10.0.0.2"},
	}, {
		name:  "not outside its named pool",
		pools: []config.Pool{poolA, poolB},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http},
			{Service: "ns/b", ShareKey: "k", Ports: https, Pool: "b"},
		},
		want: []string{"ns/a: 10.0.0.0", "ns/b: 10.0.1.0"},
	}, {
		name:  "requested by both",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http, Want: addrs("10.0.0.3")},
			{Service: "ns/b", ShareKey: "k", Ports: https, Want: addrs("10.0.0.3")},
		},
		want: []string{"ns/a: 10.0.0.3", "ns/b: 10.0.0.3"},
	}, {
		name:  "requested, with a port clash",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http, Want: addrs("10.0.0.3")},
			{Service: "ns/b", ShareKey: "k", Ports: http, Want: addrs("10.0.0.3")},
		},
		want: []string{"ns/a: 10.0.0.3", "ns/b: AddressInUse"},
		msgs: map[string]string{"ns/b": "both use port TCP/80"},
	}, {
		name:  "requested, with another key",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/a", ShareKey: "k", Ports: http, Want: addrs("10.0.0.3")},
			{Service: "ns/b", ShareKey: "j", Ports: https, Want: addrs("10.0.0.3")},
		},
		want: []string{"ns/a: 10.0.0.3", "ns/b: AddressInUse"},
		msgs: map[string]string{"ns/b": `allow-shared-ip differ ("k" and "j")`},
	}, {
		name:  "held by three, one clashing: the first two by key keep it",
		pools: []config.Pool{poolA},
		reqs: []Request{
			{Service: "ns/c", ShareKey: "k", Ports: http, Current: addrs("10.0.0.1")},
			{Service: "ns/b", ShareKey: "k", Ports: https, Current: addrs("10.0.0.1")},
			{Service: "ns/a", ShareKey: "k", Ports: http, Current: addrs("10.0.0.1")},
		},
		want: []string{"ns/a: 10.0.0.1", "ns/b: 10.0.0.1", "ns/c: 10.0.0.0"},
	}})
}

// TestAllocateRestartRandom plays a leader that allocates for many Services,
// then a new leader that reads the statuses back, in another order.
func TestAllocateRestartRandom(t *testing.T) {
	pools := []config.Pool{pool("a", "10.0.0.0/28", "fd00::/124"), pool("b", "10.0.1.0/28")}
	rng := rand.New(rand.NewPCG(7, 7))
	var reqs []Request
	for i := range 40 {
		r := Request{Service: fmt.Sprintf("ns/s%02d", i), Ports: []Port{{"TCP", int32(80 + rng.IntN(3))}}}
		switch rng.IntN(4) {
		case 0:
			r.Families, r.Policy = []Family{IPv6, IPv4}, RequireDualStack
		case 1:
			r.ShareKey = "k"
		case 2:
			r.Pool = "b"
		}
		reqs = append(reqs, r)
	}
	first := Allocate(pools, reqs, nil)
	again := restarted(reqs, first)
	rng.Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
	if diff := cmp.Diff(summaries(first), summaries(Allocate(pools, again, nil))); diff != "" {
		t.Fatalf("after a restart (-first +second):\n%s", diff)
	}
}

// TestAllocateLargePools hands out thousands of addresses from a /16 and a
// /64 and must not enumerate either.
func TestAllocateLargePools(t *testing.T) {
	pools := []config.Pool{pool("p", "10.1.0.0/16", "fd00::/64")}
	var reqs []Request
	for i := range 3000 {
		reqs = append(reqs, Request{Service: fmt.Sprintf("ns/s%04d", i), Families: []Family{IPv4, IPv6}, Policy: RequireDualStack})
	}
	taken := func(a netip.Addr) bool { return a.As16()[15]%2 == 1 } // every odd address
	start := time.Now()
	got := Allocate(pools, reqs, taken)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Allocate took %v", d)
	}
	last := got[len(got)-1]
	if want := addrs("10.1.23.110", "fd00::176e"); last.Err != nil || !slices.Equal(last.Addrs, want) {
		t.Errorf("the last Service got %s, want %v", summary(last), want)
	}
}

// TestAllocateScanGivesUp checks that a taken function refusing a whole
// /64 exhausts it instead of hanging.
func TestAllocateScanGivesUp(t *testing.T) {
	got := Allocate([]config.Pool{pool("p", "fd00::/64")}, []Request{{Service: "ns/a", Families: []Family{IPv6}}, {Service: "ns/b", Families: []Family{IPv6}}},
		func(netip.Addr) bool { return true })
	if diff := cmp.Diff([]string{"ns/a: PoolExhausted", "ns/b: PoolExhausted"}, summaries(got)); diff != "" {
		t.Fatalf("Allocate (-want +got):\n%s", diff)
	}
}

func TestErrorString(t *testing.T) {
	err := errorf(ReasonPoolExhausted, "pool %q has no free %v address", "a", IPv6)
	if got, want := err.Error(), `PoolExhausted: pool "a" has no free IPv6 address`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// The fuzzer's world: two pools, a stale one, and addresses in and out of
// them to request, hold and mark taken.
var (
	fuzzPools = []config.Pool{
		pool("a", "10.0.0.0/30", "fd00::/127"),
		pool("b", "10.0.1.0/31"),
		poolStale,
	}
	fuzzAddrs    = addrs("10.0.0.0", "10.0.0.1", "10.0.0.3", "10.0.1.0", "10.0.1.1", "fd00::", "fd00::1", "127.0.0.1", "192.0.2.1", "fd01::1")
	fuzzPoolRefs = []string{"", "a", "b", "stale", "nope"}
	fuzzFamilies = [][]Family{nil, {IPv4}, {IPv6}, {IPv4, IPv6}, {IPv6, IPv4}, {IPv4, IPv4}}
	fuzzPolicies = []FamilyPolicy{"", SingleStack, PreferDualStack, RequireDualStack}
	fuzzKeys     = []string{"", "k", "j"}
	fuzzPorts    = []Port{{"TCP", 80}, {"TCP", 443}, {"UDP", 80}}
)

// fuzzRequests reads requests from data, eight bytes each; the first byte
// picks the taken addresses.
func fuzzRequests(data []byte) ([]Request, func(netip.Addr) bool) {
	if len(data) == 0 {
		return nil, nil
	}
	mask := data[0]
	taken := func(a netip.Addr) bool {
		i := slices.Index(fuzzAddrs, a)
		return i >= 0 && i < 8 && mask&(1<<i) != 0
	}
	pick := func(b byte) []netip.Addr {
		var out []netip.Addr
		if b%4 >= 1 {
			out = append(out, fuzzAddrs[int(b/4)%len(fuzzAddrs)])
		}
		if b%4 == 3 {
			out = append(out, fuzzAddrs[int(b/40)%len(fuzzAddrs)])
		}
		return out
	}
	var reqs []Request
	for b := data[1:]; len(b) >= 8; b = b[8:] {
		r := Request{
			Service:  fmt.Sprintf("ns/s%d", b[0]%8),
			Pool:     fuzzPoolRefs[int(b[1])%len(fuzzPoolRefs)],
			Families: fuzzFamilies[int(b[2])%len(fuzzFamilies)],
			Policy:   fuzzPolicies[int(b[3])%len(fuzzPolicies)],
			ShareKey: fuzzKeys[int(b[4])%len(fuzzKeys)],
			Want:     pick(b[5]),
			Current:  pick(b[6]),
		}
		for i, p := range fuzzPorts {
			if b[7]&(1<<i) != 0 {
				r.Ports = append(r.Ports, p)
			}
		}
		reqs = append(reqs, r)
	}
	return reqs, taken
}

// FuzzAllocate checks Allocate's invariants on requests built from bytes:
// one Assignment per request, sorted; no address held by two Services that
// cannot share it; every address fit, in the Service's pool and of one of
// its families; requests honoured; the same result whatever the order; and
// no Service that succeeded moves when its status is fed back.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0x05, 0, 0, 3, 2, 1, 0, 0, 1, 1, 1, 0, 0, 1, 4, 5, 2})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 5, 0, 1, 1, 0, 0, 0, 1, 5, 0, 1, 2, 2, 3, 3, 2, 0, 23, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, taken := fuzzRequests(data)
		got := Allocate(fuzzPools, reqs, taken)
		if len(got) != len(reqs) {
			t.Fatalf("%d assignments for %d requests", len(got), len(reqs))
		}
		if !slices.IsSortedFunc(got, func(a, b Assignment) int { return strings.Compare(a.Service, b.Service) }) {
			t.Fatalf("not sorted by Service: %v", summaries(got))
		}
		byService := make(map[string]*Request)
		for i := range reqs {
			byService[reqs[i].Service] = &reqs[i]
		}
		holders := make(map[netip.Addr][]*Request)
		for _, a := range got {
			r := byService[a.Service]
			checkAssignment(t, r, a, taken)
			for _, x := range a.Addrs {
				for _, h := range holders[x] {
					if h.Service != r.Service && shareConflict(h, r) != "" {
						t.Fatalf("%s is given to %s and %s", x, h.Service, r.Service)
					}
				}
				holders[x] = append(holders[x], r)
			}
		}
		reversed := slices.Clone(reqs)
		slices.Reverse(reversed)
		if diff := cmp.Diff(summaries(got), summaries(Allocate(fuzzPools, reversed, taken))); diff != "" {
			t.Fatalf("reversed requests (-first +reversed):\n%s", diff)
		}
		checkRestart(t, fuzzPools, reqs, taken, got)
	})
}

// checkAssignment checks one Service's result against its own request.
func checkAssignment(t *testing.T, r *Request, a Assignment, taken func(netip.Addr) bool) {
	t.Helper()
	if a.Err != nil && (a.Err.Reason == "" || a.Err.Message == "") {
		t.Fatalf("%s: empty error %+v", a.Service, a.Err)
	}
	named := slices.IndexFunc(fuzzPools, func(p config.Pool) bool { return p.Name == r.Pool })
	var families []Family
	for _, x := range a.Addrs {
		switch {
		case config.SpecialAddr(x) != "" || taken(x):
			t.Fatalf("%s: given %s, which is special or taken", a.Service, x)
		case named >= 0 && !inPool(&fuzzPools[named], x):
			t.Fatalf("%s: given %s, outside its pool %q", a.Service, x, r.Pool)
		case !slices.ContainsFunc(fuzzPools, func(p config.Pool) bool { return inPool(&p, x) }):
			t.Fatalf("%s: given %s, outside every pool", a.Service, x)
		case slices.Contains(families, familyOf(x)):
			t.Fatalf("%s: given two %v addresses: %v", a.Service, familyOf(x), a.Addrs)
		case a.Err != nil && !slices.Contains(r.Current, x):
			t.Fatalf("%s: failed (%v), yet given %s, which it did not hold", a.Service, a.Err, x)
		}
		families = append(families, familyOf(x))
	}
	if a.Err != nil {
		return
	}
	want, err := familiesOf(r)
	if err != nil {
		t.Fatalf("%s: succeeded with invalid families: %v", a.Service, err)
	}
	if len(families) == 0 || families[0] != want[0] || !slices.Equal(families, want[:len(families)]) ||
		(r.Policy == RequireDualStack && len(families) != 2) {
		t.Fatalf("%s: families %v, want %v (%s)", a.Service, families, want, r.Policy)
	}
	for _, w := range r.Want {
		if !slices.Contains(a.Addrs, w) {
			t.Fatalf("%s: requested %s, given %v", a.Service, w, a.Addrs)
		}
	}
}
