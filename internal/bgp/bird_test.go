package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
)

const birdConf = `
log "{{dir}}/bird.log" all;
router id {{router}};
protocol device { scan time 1; }
protocol direct { ipv4; ipv6; interface "{{link}}"; }
protocol kernel { ipv4 { import none; export all; }; }
protocol kernel { ipv6 { import none; export all; }; }
template bgp node {
	local as 65535;
	multihop;
	passive on;
	hold time 9;
	error wait time 1, 5;
	ipv4 { import all; export none; };
	ipv6 { import all; export none; };
}
protocol bgp vipd from node {
	local {{router}} as 65535;
	neighbor {{node}} as 4200000000;
	password "{{password}}";
}
protocol bgp vipd_md5 from node {
	local {{router_md5}} as 65535;
	neighbor {{node_md5}} as 4200000000;
	password "the-right-one";
}
`

// TestBIRD runs the speaker against BIRD 2 over an IPv4 multihop session
// with MD5, both sides listening: IPv4 and IPv6 routes with their attributes, an in-place MED
// change, withdrawal, a wrong MD5 password, and shutdown.
func TestBIRD(t *testing.T) {
	if l, child := labFromEnv(t); child {
		birdChecks(t, l)
		return
	}
	requireLabTools(t, "bird", "birdc")
	l := newLabDescription(t.TempDir(), "b")
	buildNetwork(t, l)
	conf := strings.NewReplacer(
		"{{dir}}", filepath.Dir(l.BirdSocket), "{{link}}", l.RouterLink, "{{password}}", l.Password,
		"{{router}}", l.RouterAddr.String(), "{{node}}", l.NodeAddr.String(),
		"{{router_md5}}", l.RouterAddrMD5.String(), "{{node_md5}}", l.NodeAddrMD5.String(),
	).Replace(birdConf)
	startBIRD(t, l, conf)
	inNodeNamespace(t, l)
}

// birdChecks runs inside the node namespace. The speaker listens on 179
// as well as dialling out, and so does BIRD: either side's connection may
// carry the session, through the relay, and they may collide.
func birdChecks(t *testing.T, l lab) {
	s := startSpeaker(t, Global{
		ASN: 4200000000, RouterID: l.NodeAddr, ListenPort: 179,
		AllowedPrefixes: []netip.Prefix{allowedV4, allowedV6},
	}, nil)
	peers := []config.Peer{
		{Name: "bird", Address: l.RouterAddr, ASN: 65535, Password: config.Secret(l.Password), Multihop: true,
			SourceAddress: l.NodeAddr, HoldTime: 9 * time.Second},
		{Name: "bird-md5", Address: l.RouterAddrMD5, ASN: 65535, Password: "a-wrong-one", Multihop: true,
			SourceAddress: l.NodeAddrMD5, HoldTime: 9 * time.Second},
	}
	if err := s.SetPeers(context.Background(), peers); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	up := waitEstablished(t, s.Speaker, l.RouterAddr)
	if up.IPv6NextHop != l.Node6 || up.IPv6Reason != "" {
		t.Errorf("IPv6 next hop = %v (%q), want %v found on the interface towards BIRD", up.IPv6NextHop, up.IPv6Reason, l.Node6)
	}

	routes := []Route{
		{Prefix: vip4, MED: 100, Communities: []config.Community{64532<<16 | 100}, LargeCommunities: []config.LargeCommunity{{Global: 4200000000, Local1: 1, Local2: 2}}},
		{Prefix: vip6, MED: 100, Prepend: 1, Communities: []config.Community{65535 << 16}},
	}
	if err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes: %v", err)
	}
	want := map[netip.Prefix]map[string]string{
		vip4: {"via": l.NodeAddr.String(), "BGP.next_hop": l.NodeAddr.String(), "BGP.med": "100", "BGP.as_path": "4200000000",
			"BGP.community": "(64532,100)", "BGP.large_community": "(4200000000, 1, 2)"},
		vip6: {"via": l.Node6.String(), "BGP.next_hop": l.Node6.String(), "BGP.med": "100", "BGP.as_path": "4200000000 4200000000",
			"BGP.community": "(65535,0)"},
	}
	waitBIRDRoutes(t, l, want)
	for _, r := range []struct{ family, prefix, via string }{{"-4", "192.0.2.16", l.NodeAddr.String()}, {"-6", "2001:db8:1::", l.Node6.String()}} {
		if out := run(t, "ip", "-n", l.RouterNS, r.family, "route", "show", r.prefix); !strings.Contains(out, "via "+r.via) {
			t.Errorf("router kernel route for %s = %q, want via %s", r.prefix, out, r.via)
		}
	}

	// MED change: re-announced in place, the session stays.
	routes[0].MED = 200
	if err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes with new MED: %v", err)
	}
	want[vip4]["BGP.med"] = "200"
	waitBIRDRoutes(t, l, want)
	if st, _ := peerStatus(s.Speaker, l.RouterAddr); !st.Since.Equal(up.Since) || birdProtocol(t, l, "vipd") != "Established" {
		t.Errorf("session reset by a MED change: %+v, BIRD %q", st, birdProtocol(t, l, "vipd"))
	}

	// Withdraw all, then announce again for the shutdown check.
	if err := s.SetRoutes(context.Background(), nil); err != nil {
		t.Fatalf("SetRoutes(nil): %v", err)
	}
	waitBIRDRoutes(t, l, map[netip.Prefix]map[string]string{})
	if err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes again: %v", err)
	}
	waitBIRDRoutes(t, l, want)

	// The wrong MD5 password never gets a session, and status says why.
	waitFor(t, 60*time.Second, "LastError of the peer with a wrong MD5 password", func() (bool, string) {
		md5, _ := peerStatus(s.Speaker, l.RouterAddrMD5)
		if md5.State == "Established" {
			t.Fatal("session with a wrong MD5 password established")
		}
		return strings.Contains(md5.LastError, "MD5 password mismatch"), string(md5.State) + " " + md5.LastError
	})
	if st := birdProtocol(t, l, "vipd_md5"); strings.HasPrefix(st, "Established") {
		t.Errorf("BIRD established the session with the wrong password: %s", st)
	}

	// Shutdown: routes gone and the session closed with a Cease.
	s.stop(t)
	waitBIRDRoutes(t, l, map[netip.Prefix]map[string]string{})
	if st := birdc(t, l, "show", "protocols", "all", "vipd"); !strings.Contains(st, "Administrative shutdown") {
		t.Errorf("BIRD did not get a Cease (administrative shutdown):\n%s", st)
	}
}

// waitBIRDRoutes waits until BIRD's routes from the speaker have exactly
// the attributes in want (only the listed attributes are compared).
func waitBIRDRoutes(t *testing.T, l lab, want map[netip.Prefix]map[string]string) {
	t.Helper()
	waitFor(t, 30*time.Second, "routes in BIRD", func() (bool, string) {
		got := birdRoutes(birdc(t, l, "show", "route", "all", "protocol", "vipd"))
		for p, attrs := range got {
			w, ok := want[p]
			if !ok {
				continue
			}
			for k := range attrs {
				if _, ok := w[k]; !ok {
					delete(attrs, k)
				}
			}
		}
		diff := cmp.Diff(want, got)
		return diff == "", fmt.Sprintf("(-want +got):\n%s", diff)
	})
}
