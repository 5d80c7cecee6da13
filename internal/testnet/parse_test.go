package testnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The fixtures in testdata were captured from BIRD 2.0.12, FRR 8.4.4 and
// iproute2 6.1 in a world like TestWorldECMP's, after n1's announcer had
// stopped for the session and single-path ones.

var (
	n1v4, n2v4 = addr("10.255.255.11"), addr("10.255.255.12")
	n1v6, n2v6 = addr("fd00:255::b"), addr("fd00:255::c")
	birdPeers  = map[string]netip.Addr{"peer1": n1v4, "peer2": n2v4}
	addrCmp    = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// announced is what the capture's announcers sent, from node addr.
func announced(from, nextHop netip.Addr, best bool) RouteInfo {
	return RouteInfo{
		NextHop: nextHop, FromPeer: from, MED: 100, ASPath: []uint32{nodeASN}, Best: best,
		Communities:      []string{"64532:100", "65535:0", "65535:65281"},
		LargeCommunities: []string{"1:2:3", "4200000000:1:2"},
	}
}

// birdAnnounced is announced as BIRD shows it: BIRD gives a route from
// an eBGP peer its default LOCAL_PREF, 100.
func birdAnnounced(from, nextHop netip.Addr, best bool) RouteInfo {
	r := announced(from, nextHop, best)
	r.LocalPref = 100
	return r
}

func TestParseBirdRoutes(t *testing.T) {
	tests := []struct {
		file   string
		prefix netip.Prefix
		want   []RouteInfo
	}{
		{"bird_route4.txt", vip4, []RouteInfo{birdAnnounced(n1v4, n1v4, true), birdAnnounced(n2v4, n2v4, false)}},
		{"bird_route6.txt", vip6, []RouteInfo{birdAnnounced(n1v4, n1v6, true), birdAnnounced(n2v4, n2v6, false)}},
		{"bird_route_absent.txt", netip.MustParsePrefix("192.168.0.99/32"), nil},
		// Another prefix's routes are not this prefix's.
		{"bird_route4.txt", netip.MustParsePrefix("192.168.0.17/32"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.prefix.String(), func(t *testing.T) {
			got, err := parseBirdRoutes(string(fixture(t, tt.file)), tt.prefix, birdPeers)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBirdAttrs(t *testing.T) {
	tests := []struct {
		name string
		line string
		want RouteInfo
	}{
		{"as set flattened", "BGP.as_path: 65001 65001 {64512 64513}", RouteInfo{ASPath: []uint32{65001, 65001, 64512, 64513}}},
		{"empty as path", "BGP.as_path: ", RouteInfo{}},
		{"ipv6 next hop with link-local", "BGP.next_hop: fd00:255::b fe80::1", RouteInfo{NextHop: n1v6}},
		{"max med", "BGP.med: 4294967295", RouteInfo{MED: 4294967295}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got RouteInfo
			if _, err := parseBirdAttr(&got, tt.line); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"BGP.med: 4294967296", "BGP.as_path: 1 x", "BGP.next_hop: nonsense"} {
		if _, err := parseBirdAttr(&RouteInfo{}, bad); err == nil {
			t.Errorf("parseBirdAttr(%q): no error", bad)
		}
	}
}

func TestParseBirdProtocols(t *testing.T) {
	got, err := parseBirdProtocols(string(fixture(t, "bird_protocols.txt")), birdPeers)
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{
		{Neighbor: n1v4, State: "Connect", Info: "Received: Administrative shutdown"},
		{Neighbor: n2v4, State: Established, Since: time.Date(2026, 11, 22, 20, 25, 26, 0, time.Local)},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseFRRRoutes(t *testing.T) {
	tests := []struct {
		file   string
		prefix netip.Prefix
		want   []RouteInfo
	}{
		{"frr_route4.json", vip4, []RouteInfo{announced(n1v4, n1v4, true), announced(n2v4, n2v4, false)}},
		{"frr_route6.json", vip6, []RouteInfo{announced(n2v4, n2v6, false), announced(n1v4, n1v6, true)}},
		{"frr_route_absent.json", netip.MustParsePrefix("192.168.0.99/32"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseFRRRoutes(fixture(t, tt.file), tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseFRRRoutes(fixture(t, "frr_route4.json"), vip6); err == nil {
		t.Error("an answer for another prefix was accepted")
	}
}

func TestParseFRRNeighbors(t *testing.T) {
	got, err := parseFRRNeighbors(fixture(t, "frr_neighbors.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{
		{Neighbor: n1v4, State: "Idle", Info: "BGP Notification received"},
		{Neighbor: n2v4, State: Established, Since: time.Unix(1795379126, 0)},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseFIB(t *testing.T) {
	tests := []struct {
		file string
		want []netip.Addr
	}{
		{"ip_route_bird_multipath4.json", []netip.Addr{n1v4, n2v4}},
		{"ip_route_bird_multipath6.json", []netip.Addr{n1v6, n2v6}},
		{"ip_route_bird_single4.json", []netip.Addr{n2v4}},
		{"ip_route_frr_nhid_multipath4.json", []netip.Addr{n1v4, n2v4}},
		{"ip_route_frr_nhid_multipath6.json", []netip.Addr{n1v6, n2v6}},
		{"ip_route_frr_nhid_single4.json", []netip.Addr{n2v4}},
		{"ip_route_absent.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseFIB(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFIBShapes(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    []netip.Addr
		wantErr bool
	}{
		{"lowest metric wins",
			`[{"dst":"x","gateway":"10.0.0.2","metric":20},{"dst":"x","gateway":"10.0.0.1","metric":10}]`,
			[]netip.Addr{addr("10.0.0.1")}, false},
		{"separate equal-metric entries merge",
			`[{"dst":"x","gateway":"fd00::2","metric":1},{"dst":"x","gateway":"fd00::1","metric":1}]`,
			[]netip.Addr{addr("fd00::1"), addr("fd00::2")}, false},
		{"ipv6 gateway of an ipv4 route",
			`[{"dst":"x","via":{"family":"inet6","host":"fd00::1"},"metric":1}]`,
			[]netip.Addr{addr("fd00::1")}, false},
		{"blackhole", `[{"dst":"x","type":"blackhole","metric":1}]`, nil, true},
		{"device route", `[{"dst":"x","dev":"lan0","metric":1}]`, nil, true},
		{"not json", `nonsense`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFIB([]byte(tt.json))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
