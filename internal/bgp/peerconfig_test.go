package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
)

var (
	peerA = netip.MustParseAddr("10.255.255.1")
	peerB = netip.MustParseAddr("10.255.255.2")
	peerC = netip.MustParseAddr("10.255.255.3")
)

func basePeer(addr netip.Addr) config.Peer {
	return config.Peer{Name: "p", Address: addr, ASN: 65535, Port: 179, Password: "pw", Multihop: true,
		HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4, config.IPv6}}
}

func TestDiffPeers(t *testing.T) {
	changed := basePeer(peerB)
	changed.Password = "new"
	cosmetic := basePeer(peerA)
	cosmetic.Name, cosmetic.IPv6NextHop, cosmetic.BFD.Enabled = "renamed", netip.MustParseAddr("2001:db8::9"), true

	current := map[netip.Addr]config.Peer{peerA: basePeer(peerA), peerB: basePeer(peerB), peerC: basePeer(peerC)}
	desired := map[netip.Addr]config.Peer{peerA: cosmetic, peerB: changed, netip.MustParseAddr("10.0.0.9"): basePeer(netip.MustParseAddr("10.0.0.9"))}
	got := diffPeers(current, desired)
	want := peerPlan{
		add:      []netip.Addr{netip.MustParseAddr("10.0.0.9")},
		remove:   []netip.Addr{peerC},
		recreate: []netip.Addr{peerB},
		keep:     []netip.Addr{peerA},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(peerPlan{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func TestSameSession(t *testing.T) {
	for name, change := range map[string]func(*config.Peer){
		"asn":            func(p *config.Peer) { p.ASN = 1 },
		"port":           func(p *config.Peer) { p.Port = 1179 },
		"password":       func(p *config.Peer) { p.Password = "other" },
		"multihop":       func(p *config.Peer) { p.Multihop = false },
		"ttl":            func(p *config.Peer) { p.TTL = 2 },
		"source address": func(p *config.Peer) { p.SourceAddress = netip.MustParseAddr("10.0.0.1") },
		"hold time":      func(p *config.Peer) { p.HoldTime = 30 * time.Second },
		"families":       func(p *config.Peer) { p.Families = []config.Family{config.IPv4} },
	} {
		p := basePeer(peerA)
		change(&p)
		if sameSession(basePeer(peerA), p) {
			t.Errorf("%s change keeps the session", name)
		}
	}
	for name, change := range map[string]func(*config.Peer){
		"name":             func(p *config.Peer) { p.Name = "x" },
		"ipv6 next hop":    func(p *config.Peer) { p.IPv6NextHop = netip.MustParseAddr("2001:db8::1") },
		"bfd":              func(p *config.Peer) { p.BFD.MinTx = time.Second },
		"default port":     func(p *config.Peer) { p.Port = 0 },
		"default families": func(p *config.Peer) { p.Families = nil },
	} {
		p := basePeer(peerA)
		change(&p)
		if !sameSession(basePeer(peerA), p) {
			t.Errorf("%s change resets the session", name)
		}
	}
}

func TestAPIPeer(t *testing.T) {
	p := basePeer(peerA)
	p.SourceAddress = netip.MustParseAddr("10.0.240.156")
	p.Port = 1179
	got := apiPeer(p, false, false)
	if c := got.Conf; c.NeighborAddress != "10.255.255.1" || c.PeerAsn != 65535 || c.AuthPassword != "pw" || c.Description != "p" {
		t.Errorf("conf = %+v", c)
	}
	if tr := got.Transport; tr.LocalAddress != "10.0.240.156" || tr.RemotePort != 1179 || tr.PassiveMode {
		t.Errorf("transport = %+v", tr)
	}
	if tm := got.Timers.Config; tm.HoldTime != 9 || tm.KeepaliveInterval != 3 || tm.ConnectRetry != 5 || tm.IdleHoldTimeAfterReset != 5 {
		t.Errorf("timers = %+v", tm)
	}
	if m := got.EbgpMultihop; m == nil || !m.Enabled || m.MultihopTtl != 255 {
		t.Errorf("multihop = %+v, want TTL 255", m)
	}
	if len(got.AfiSafis) != 2 || got.AfiSafis[0].Config.Family.Afi.String() != "AFI_IP" || got.AfiSafis[1].Config.Family.Afi.String() != "AFI_IP6" {
		t.Errorf("families = %v", got.AfiSafis)
	}
	if got.GracefulRestart != nil && got.GracefulRestart.Enabled {
		t.Error("graceful restart enabled")
	}

	p = basePeer(peerA)
	p.Multihop, p.TTL, p.HoldTime, p.Families, p.Password = false, 3, 0, []config.Family{config.IPv6}, ""
	got = apiPeer(p, false, false)
	if m := got.EbgpMultihop; m == nil || m.MultihopTtl != 3 {
		t.Errorf("ttl 3: multihop = %+v", m)
	}
	if tm := got.Timers.Config; tm.HoldTime != holdTimeNone || tm.KeepaliveInterval != holdTimeNone/3 {
		t.Errorf("hold time 0: timers = %+v", tm)
	}
	if len(got.AfiSafis) != 1 || got.Conf.AuthPassword != "" || got.Transport.LocalAddress != "" {
		t.Errorf("ipv6 only, no password, no source: %+v", got)
	}
	p.TTL = 0
	if got := apiPeer(p, false, false); got.EbgpMultihop != nil {
		t.Errorf("single hop: multihop = %+v", got.EbgpMultihop)
	}
}

func TestIndexPeers(t *testing.T) {
	peers, errs := indexPeers([]config.Peer{basePeer(peerA), basePeer(peerA), {Name: "noaddr"}})
	if len(peers) != 1 || len(errs) != 2 {
		t.Errorf("peers %v, errors %v; want one peer, two errors", peers, errs)
	}
}
