package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/config"
)

// A node with an iBGP peer (a route reflector, in its own AS) and an eBGP
// peer at once: the iBGP peer gets the node's own next hop, LOCAL_PREF and
// no prepends; the eBGP peer gets the prepends and no LOCAL_PREF.
func TestMixedIBGPAndEBGPPeers(t *testing.T) {
	ibgpAddr := netip.MustParseAddr("127.0.0.4")
	ebgpPort, ibgpPort := freePort(t), freePort(t)
	ebgp := startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: int32(ebgpPort)}, []string{receiverAddr.String()})
	ibgp := startRouter(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.4"), ListenPort: int32(ibgpPort)}, []string{ibgpAddr.String()})
	sender := startSpeaker(t, Global{
		ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{allowedV4, allowedV6},
	}, nil)
	for _, r := range []*runningSpeaker{ebgp, ibgp} {
		if err := r.SetPeers(context.Background(), []config.Peer{{Name: "sender", Address: senderAddr, ASN: senderASN, HoldTime: 9 * time.Second}}); err != nil {
			t.Fatal(err)
		}
	}
	peers := []config.Peer{
		{Name: "provider", Address: receiverAddr, ASN: receiverASN, Port: ebgpPort, SourceAddress: senderAddr,
			HoldTime: 9 * time.Second, IPv6NextHop: netip.MustParseAddr("2001:db8:ff::2")},
		{Name: "reflector", Address: ibgpAddr, ASN: senderASN, Port: ibgpPort, SourceAddress: senderAddr,
			HoldTime: 9 * time.Second, IPv6NextHop: netip.MustParseAddr("2001:db8:ff::2")},
	}
	if err := sender.SetPeers(context.Background(), peers); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sender.Speaker, receiverAddr)
	waitEstablished(t, sender.Speaker, ibgpAddr)

	routes := []Route{
		{Prefix: vip4, MED: 10, LocalPref: 100, Prepend: 2},
		{Prefix: vip6, MED: 10, LocalPref: 100},
	}
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatal(err)
	}
	a := fmt.Sprint(senderASN)
	waitAdjIn(t, ebgp.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=10 aspath=" + a + " " + a + " " + a + " comms= large=",
		vip6: "nh=2001:db8:ff::2 med=10 aspath=" + a + " comms= large=",
	})
	waitAdjIn(t, ibgp.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=10 aspath= comms= large= lp=100",
		vip6: "nh=2001:db8:ff::2 med=10 aspath= comms= large= lp=100",
	})

	// Degraded on iBGP: a lower LOCAL_PREF and a higher MED, re-announced
	// in place; the prepends move to the IPv6 route, for eBGP only.
	routes = []Route{
		{Prefix: vip4, MED: 1000, LocalPref: 50},
		{Prefix: vip6, MED: 10, LocalPref: 100, Prepend: 1},
	}
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatal(err)
	}
	waitAdjIn(t, ebgp.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=1000 aspath=" + a + " comms= large=",
		vip6: "nh=2001:db8:ff::2 med=10 aspath=" + a + " " + a + " comms= large=",
	})
	waitAdjIn(t, ibgp.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=1000 aspath= comms= large= lp=50",
		vip6: "nh=2001:db8:ff::2 med=10 aspath= comms= large= lp=100",
	})
	sender.applyMu.Lock()
	external := slices.Clone(sender.external)
	sender.applyMu.Unlock()
	if !slices.Equal(external, []netip.Addr{receiverAddr}) {
		t.Errorf("eBGP peers in the policy: %v, want %v", external, receiverAddr)
	}
}
