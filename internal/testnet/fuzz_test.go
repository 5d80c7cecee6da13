package testnet

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addSeedFiles adds every testdata file matching glob as a seed, and fails
// when there is none, so the seeds cannot silently vanish.
func addSeedFiles(f *testing.F, glob string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files for %s (%v)", glob, err)
	}
	var seeds [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzParseFIB checks that any input parses into a sorted set or an error,
// and that gateways rendered as `ip -json route` come back as a set.
func FuzzParseFIB(f *testing.F) {
	for _, seed := range addSeedFiles(f, "ip_route_*.json") {
		f.Add(seed, []byte{10, 0, 0, 1, 10, 0, 0, 2}, true)
	}
	f.Fuzz(func(t *testing.T, raw, gateways []byte, multipath bool) {
		if got, err := parseFIB(raw); err == nil && !slices.IsSortedFunc(got, compareStrict) {
			t.Errorf("parseFIB(%q) = %v: not a sorted set", raw, got)
		}
		addrs := addrsFrom(gateways)
		if len(addrs) == 0 || (!multipath && len(addrs) > 1) {
			return
		}
		got, err := parseFIB(renderIPRoute(addrs, multipath))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sortedSet(addrs), got, addrCmp); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}

// compareStrict orders addresses and treats duplicates as out of order.
func compareStrict(a, b netip.Addr) int {
	if c := a.Compare(b); c != 0 {
		return c
	}
	return 1
}

// addrsFrom cuts b into IPv4 addresses (4 bytes each) and, for odd chunk
// positions, IPv6 ones (16 bytes), at most 8 in all.
func addrsFrom(b []byte) []netip.Addr {
	var addrs []netip.Addr
	for len(addrs) < 8 {
		if len(addrs)%2 == 1 && len(b) >= 16 {
			addrs = append(addrs, netip.AddrFrom16([16]byte(b[:16])).Unmap())
			b = b[16:]
		} else if len(b) >= 4 {
			addrs = append(addrs, netip.AddrFrom4([4]byte(b[:4])))
			b = b[4:]
		} else {
			break
		}
	}
	return addrs
}

// renderIPRoute writes a route the way `ip -json route` does.
func renderIPRoute(addrs []netip.Addr, multipath bool) []byte {
	hop := func(a netip.Addr) map[string]any {
		return map[string]any{"gateway": a.String(), "dev": "lan0", "flags": []string{}}
	}
	route := map[string]any{"dst": "192.168.0.16", "protocol": "bgp", "metric": 20, "flags": []string{}}
	if multipath {
		var hops []map[string]any
		for _, a := range addrs {
			hops = append(hops, hop(a))
		}
		route["nexthops"] = hops
	} else {
		for k, v := range hop(addrs[0]) {
			route[k] = v
		}
	}
	b, _ := json.Marshal([]any{route})
	return b
}

// FuzzParseBirdRoutes checks that any input parses without panicking into
// routes from known peers, and that routes written in birdc's format come
// back unchanged.
func FuzzParseBirdRoutes(f *testing.F) {
	for _, seed := range addSeedFiles(f, "bird_route*.txt") {
		f.Add(seed, uint32(100), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, med uint32, attrs []byte, two bool) {
		if got, err := parseBirdRoutes(string(raw), vip4, birdPeers); err == nil {
			for _, r := range got {
				if r.FromPeer.IsValid() && r.FromPeer != n1v4 && r.FromPeer != n2v4 {
					t.Errorf("route from unknown peer %s", r.FromPeer)
				}
			}
		}
		want := []RouteInfo{routeFrom(n1v4, med, attrs, true)}
		if two {
			want = append(want, routeFrom(n2v4, med+1, attrs, false))
		}
		for i := range want {
			want[i].LocalPref = 100 // what renderBirdRoutes writes
		}
		got, err := parseBirdRoutes(renderBirdRoutes(vip4, want), vip4, birdPeers)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, addrCmp); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}

// routeFrom builds a route whose AS path and communities come from b.
func routeFrom(peer netip.Addr, med uint32, b []byte, best bool) RouteInfo {
	r := RouteInfo{NextHop: peer, FromPeer: peer, MED: med, Best: best}
	for i := 0; i+4 <= len(b); i += 4 {
		word := binary.BigEndian.Uint32(b[i:])
		r.ASPath = append(r.ASPath, word)
		r.Communities = append(r.Communities, fmt.Sprintf("%d:%d", word>>16, word&0xffff))
		r.LargeCommunities = append(r.LargeCommunities, fmt.Sprintf("%d:%d:%d", word, med, i))
	}
	return r
}

// renderBirdRoutes writes routes the way `birdc show route all` does.
func renderBirdRoutes(prefix netip.Prefix, routes []RouteInfo) string {
	names := map[netip.Addr]string{}
	for name, a := range birdPeers {
		names[a] = name
	}
	var b strings.Builder
	b.WriteString("BIRD 2.0.12 ready.\nTable master4:\n")
	for i, r := range routes {
		net, star := strings.Repeat(" ", 21), ""
		if i == 0 {
			net = fmt.Sprintf("%-20s ", prefix)
		}
		if r.Best {
			star = " *"
		}
		fmt.Fprintf(&b, "%sunicast [%s 2026-11-22 20:25:26]%s (100) [AS%di]\n", net, names[r.FromPeer], star, r.ASPath)
		fmt.Fprintf(&b, "\tvia %s on lan0\n\tType: BGP univ\n\tBGP.origin: IGP\n", r.NextHop)
		fmt.Fprintf(&b, "\tBGP.as_path: %s\n", strings.Trim(fmt.Sprint(r.ASPath), "[]"))
		fmt.Fprintf(&b, "\tBGP.next_hop: %s\n\tBGP.med: %d\n\tBGP.local_pref: 100\n", r.NextHop, r.MED)
		if len(r.Communities) > 0 {
			fmt.Fprintf(&b, "\tBGP.community: %s\n", birdList(r.Communities, ","))
		}
		if len(r.LargeCommunities) > 0 {
			fmt.Fprintf(&b, "\tBGP.large_community: %s\n", birdList(r.LargeCommunities, ", "))
		}
	}
	return b.String()
}

// birdList writes ["1:2", "3:4"] as "(1,2) (3,4)" with sep between numbers.
func birdList(values []string, sep string) string {
	var parts []string
	for _, v := range values {
		parts = append(parts, "("+strings.ReplaceAll(v, ":", sep)+")")
	}
	return strings.Join(parts, " ")
}
