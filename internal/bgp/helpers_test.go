package bgp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/testnet"
)

// logBuffer collects a test's log output; it is printed when the test fails.
// (GoBGP goroutines may log after a test ends, so t.Log is not safe here.)
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("speaker log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// runningSpeaker is a Speaker whose Run goroutine the test owns.
type runningSpeaker struct {
	*Speaker
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

// startSpeaker runs a speaker until stop or the end of the test.
// listen restricts its listener (nil: no restriction).
func startSpeaker(t *testing.T, g Global, listen []string) *runningSpeaker {
	t.Helper()
	log, buf := testLogger(t)
	return runSpeaker(t, New(g, log), buf, listen)
}

// startRouter runs a speaker that plays a router: GoBGP talks to its peers
// directly, without relays, and keeps the routes they send.
func startRouter(t *testing.T, g Global, listen []string) *runningSpeaker {
	t.Helper()
	log, buf := testLogger(t)
	s := New(g, log)
	s.relays = nil
	return runSpeaker(t, s, buf, listen)
}

func runSpeaker(t *testing.T, s *Speaker, buf *logBuffer, listen []string) *runningSpeaker {
	t.Helper()
	s.listenAddresses = listen
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSpeaker{Speaker: s, logs: buf, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { rs.done <- s.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-rs.done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("speaker not ready after 30s")
	}
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop ends Run and waits for it; repeated calls are no-ops.
func (rs *runningSpeaker) stop(t *testing.T) {
	t.Helper()
	rs.cancel()
	select {
	case err, ok := <-rs.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(rs.done)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return 30s after cancel")
	}
}

// waitFor polls cond through testnet.WaitFor until it holds or timeout
// passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	err := testnet.WaitFor(context.Background(), timeout, func(context.Context) error {
		if ok, state := cond(); !ok {
			return fmt.Errorf("last state: %s", state)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// ribPrefixes lists the prefixes in a speaker's global RIB.
func ribPrefixes(t *testing.T, s *Speaker) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}
		err := runningServer(t, s).ListPath(req, func(nlri bgp.NLRI, _ []*apiutil.Path) {
			p, _ := nlriPrefix(nlri)
			out = append(out, p)
		})
		if err != nil {
			t.Fatalf("list %s RIB: %v", f, err)
		}
	}
	return out
}

// adjIn returns the paths a speaker received from peer (before its import
// policy, which rejects them all), by prefix.
func adjIn(t *testing.T, s *Speaker, peer netip.Addr) map[netip.Prefix]*apiutil.Path {
	t.Helper()
	out := make(map[netip.Prefix]*apiutil.Path)
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: peer.String(), Family: f}
		err := runningServer(t, s).ListPath(req, func(nlri bgp.NLRI, paths []*apiutil.Path) {
			p, _ := nlriPrefix(nlri)
			if len(paths) > 0 {
				out[p] = paths[0]
			}
		})
		if err != nil {
			t.Fatalf("list %s adj-rib-in of %s: %v", f, peer, err)
		}
	}
	return out
}

func runningServer(t *testing.T, s *Speaker) interface {
	ListPath(apiutil.ListPathRequest, func(bgp.NLRI, []*apiutil.Path)) error
} {
	t.Helper()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.gobgp == nil {
		t.Fatal("speaker not running")
	}
	return s.gobgp
}

// pathSummary renders the attributes tests compare.
func pathSummary(p *apiutil.Path) string {
	var nh netip.Addr
	med, asPath, comms, large, lp := "-", "", "", "", ""
	for _, a := range p.Attrs {
		switch v := a.(type) {
		case *bgp.PathAttributeNextHop:
			nh = v.Value
		case *bgp.PathAttributeMpReachNLRI:
			nh = v.Nexthop
		case *bgp.PathAttributeLocalPref:
			lp = fmt.Sprintf(" lp=%d", v.Value)
		case *bgp.PathAttributeMultiExitDisc:
			med = fmt.Sprint(v.Value)
		case *bgp.PathAttributeAsPath:
			for _, seg := range v.Value {
				for _, asn := range seg.GetAS() {
					asPath = strings.TrimSpace(fmt.Sprintf("%s %d", asPath, asn))
				}
			}
		case *bgp.PathAttributeCommunities:
			for _, c := range v.Value {
				comms = strings.TrimSpace(fmt.Sprintf("%s %d:%d", comms, c>>16, c&0xffff))
			}
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range v.Values {
				large = strings.TrimSpace(fmt.Sprintf("%s %d:%d:%d", large, c.ASN, c.LocalData1, c.LocalData2))
			}
		}
	}
	return fmt.Sprintf("nh=%s med=%s aspath=%s comms=%s large=%s%s", nh, med, asPath, comms, large, lp)
}

func peerStatus(s *Speaker, addr netip.Addr) (PeerStatus, bool) {
	for _, p := range s.Status().Peers {
		if p.Address == addr {
			return p, true
		}
	}
	return PeerStatus{}, false
}
