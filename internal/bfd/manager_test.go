package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/testnet"
)

// waitTimeout is generous: the machine is shared and noisy.
const waitTimeout = 10 * time.Second

// testLogger writes slog records to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// freeUDPPorts returns n UDP ports that were free a moment ago on both
// loopback families.
func freeUDPPorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var out []uint16
	for len(out) < n {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		c.Close()
		if c6, err := net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			c6.Close()
			out = append(out, port)
		}
	}
	return out
}

// testManager is a Manager under test with its events recorded.
type testManager struct {
	t      *testing.T
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []Event
}

// startPair starts two managers on loopback whose ports point at each
// other: a listens where b sends and the other way round.
func startPair(t *testing.T) (a, b *testManager) {
	p := freeUDPPorts(t, 4)
	a = startManager(t, "a", withPorts(ports{listen: [2]uint16{p[0], p[1]}, peer: [2]uint16{p[2], p[3]}}))
	b = startManager(t, "b", withPorts(ports{listen: [2]uint16{p[2], p[3]}, peer: [2]uint16{p[0], p[1]}}))
	return a, b
}

func withPorts(pp ports) func(*Manager) { return func(m *Manager) { m.env.ports = pp } }

// startManager runs a Manager until the test ends; setup adjusts it
// before Run.
func startManager(t *testing.T, name string, setup func(*Manager)) *testManager {
	m := NewManager(testLogger(t).With("manager", name))
	setup(m)
	ctx, cancel := context.WithCancel(context.Background())
	r := &testManager{t: t, m: m, cancel: cancel, done: make(chan struct{})}
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	go func() {
		defer close(r.done)
		for ev := range m.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		r.stop()
		if err := <-runErr; err != nil {
			t.Errorf("manager %s: Run: %v", name, err)
		}
	})
	return r
}

// stop ends Run and waits until Events is closed.
func (r *testManager) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(waitTimeout):
		r.t.Errorf("Events not closed %v after Run's context ended", waitTimeout)
	}
}

func (r *testManager) eventsSnapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func (r *testManager) set(peers ...Peer) {
	r.t.Helper()
	if err := r.m.Set(context.Background(), peers); err != nil {
		r.t.Fatal(err)
	}
}

// waitStatus waits until the session for key satisfies ok.
func (r *testManager) waitStatus(key Key, what string, ok func(SessionStatus) bool) SessionStatus {
	r.t.Helper()
	var last SessionStatus
	err := testnet.WaitFor(context.Background(), waitTimeout, func(context.Context) error {
		for _, st := range r.m.Status() {
			if st.Peer.Key() == key {
				if last = st; ok(st) {
					return nil
				}
				return fmt.Errorf("not %s; last status %+v", what, st)
			}
		}
		return fmt.Errorf("no session")
	})
	if err != nil {
		r.t.Fatalf("session %s: %v", key, err)
	}
	return last
}

func isUp(st SessionStatus) bool { return st.State == Up && !st.Polling }

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
	lo6 = netip.MustParseAddr("::1")
)

func TestManagersComeUpOnLoopback(t *testing.T) {
	a, b := startPair(t)
	peersA := []Peer{
		{Local: lo1, Remote: lo2},
		{Local: lo1, Remote: lo2, Multihop: true},
		{Local: lo6, Remote: lo6},
	}
	var peersB []Peer
	for _, p := range peersA {
		peersB = append(peersB, Peer{Local: p.Remote, Remote: p.Local, Multihop: p.Multihop})
	}
	a.set(peersA...)
	b.set(peersB...)
	for i, p := range peersA {
		stA := a.waitStatus(p.withDefaults().Key(), "Up", isUp)
		stB := b.waitStatus(peersB[i].withDefaults().Key(), "Up", isUp)
		if stA.LocalDiscriminator != stB.RemoteDiscriminator || stB.LocalDiscriminator != stA.RemoteDiscriminator {
			t.Errorf("%s: discriminators a %d/%d b %d/%d do not match", p.Key(), stA.LocalDiscriminator,
				stA.RemoteDiscriminator, stB.LocalDiscriminator, stB.RemoteDiscriminator)
		}
		if stA.TxInterval != 300*time.Millisecond || stA.RxInterval != 300*time.Millisecond || stA.DetectionTime != 900*time.Millisecond {
			t.Errorf("%s: agreed tx %v rx %v detect %v, want 300ms 300ms 900ms", p.Key(), stA.TxInterval, stA.RxInterval, stA.DetectionTime)
		}
		if stA.LocalPort < minSourcePort || stA.Counters.PacketsIn == 0 || stA.Counters.PacketsOut == 0 || stA.Counters.Dropped != 0 {
			t.Errorf("%s: port %d counters %+v", p.Key(), stA.LocalPort, stA.Counters)
		}
	}
	ports := map[uint16]bool{}
	for _, st := range a.m.Status() {
		if ports[st.LocalPort] {
			t.Errorf("source port %d used twice", st.LocalPort)
		}
		ports[st.LocalPort] = true
	}
}

func TestManagerTimerChangeAndRemoval(t *testing.T) {
	a, b := startPair(t)
	pa := Peer{Local: lo1, Remote: lo2}
	pb := Peer{Local: lo2, Remote: lo1}
	a.set(pa)
	b.set(pb)
	a.waitStatus(pa.Key(), "Up", isUp)
	b.waitStatus(pb.Key(), "Up", isUp)

	pa.MinTx, pa.MinRx = 100*time.Millisecond, 500*time.Millisecond
	a.set(pa)
	a.waitStatus(pa.Key(), "at rx 500ms", func(st SessionStatus) bool {
		return isUp(st) && st.RxInterval == 500*time.Millisecond && st.TxInterval == 300*time.Millisecond
	})
	b.waitStatus(pb.Key(), "at tx 500ms", func(st SessionStatus) bool {
		return isUp(st) && st.TxInterval == 500*time.Millisecond && st.DetectionTime == 900*time.Millisecond
	})
	for _, r := range []*testManager{a, b} {
		for _, ev := range r.eventsSnapshot() {
			if ev.To != Up && ev.To != Init {
				t.Errorf("event %+v during a timer change", ev)
			}
		}
	}

	// Removing the session on a tells b AdminDown: not a failure.
	a.set()
	b.waitStatus(pb.Key(), "Down", func(st SessionStatus) bool { return st.State == Down })
	evs := b.eventsSnapshot()
	last := evs[len(evs)-1]
	if last.To != Down || last.RemoteState != AdminDown || last.RemoteDiag != DiagAdministrativelyDown || last.Failure() {
		t.Errorf("b's last event %+v, want Down after AdminDown, no failure", last)
	}
	if len(a.m.Status()) != 0 {
		t.Errorf("a still reports %+v", a.m.Status())
	}
}

func TestManagerShutdownSendsAdminDown(t *testing.T) {
	a, b := startPair(t)
	pa := Peer{Local: lo1, Remote: lo2, Multihop: true}
	pb := Peer{Local: lo2, Remote: lo1, Multihop: true}
	a.set(pa)
	b.set(pb)
	b.waitStatus(pb.Key(), "Up", isUp)
	a.stop()
	st := b.waitStatus(pb.Key(), "Down", func(st SessionStatus) bool { return st.State == Down })
	if st.RemoteState != AdminDown || st.RemoteDiag != DiagAdministrativelyDown {
		t.Errorf("after a's shutdown b sees remote %s/%s, want AdminDown/AdministrativelyDown", st.RemoteState, st.RemoteDiag)
	}
	if err := a.m.Set(context.Background(), []Peer{pa}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Run: %v, want ErrClosed", err)
	}
}

// recorder counts the log records that carry each event key, also
// through loggers derived with With.
type recorder struct {
	slog.Handler
	counts *eventCounts
}

type eventCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func newRecorder(h slog.Handler) *recorder {
	return &recorder{Handler: h, counts: &eventCounts{n: map[string]int{}}}
}

func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recorder{Handler: r.Handler.WithAttrs(attrs), counts: r.counts}
}

func (r *recorder) WithGroup(name string) slog.Handler {
	return &recorder{Handler: r.Handler.WithGroup(name), counts: r.counts}
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			r.counts.mu.Lock()
			r.counts.n[a.Value.String()]++
			r.counts.mu.Unlock()
		}
		return true
	})
	return r.Handler.Handle(ctx, rec)
}

func (r *recorder) count(event string) int {
	r.counts.mu.Lock()
	defer r.counts.mu.Unlock()
	return r.counts.n[event]
}

func TestManagerDropsLowTTL(t *testing.T) {
	p := freeUDPPorts(t, 2)
	logs := newRecorder(testLogger(t).Handler())
	b := startManager(t, "b", func(m *Manager) {
		withPorts(ports{listen: [2]uint16{p[0], p[0]}, peer: [2]uint16{p[1], p[1]}})(m)
		m.log = slog.New(logs)
	})
	pb := Peer{Local: lo2, Remote: lo1, Multihop: true, MinTTL: 254} // stricter than the default
	b.set(pb)
	b.waitStatus(pb.Key(), "open", func(st SessionStatus) bool { return st.LocalPort != 0 })

	// A packet from the remote's address that crossed too many hops.
	conn, err := net.ListenPacket("udp4", lo1.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var optErr error
	if err := raw.Control(func(fd uintptr) { optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 200) }); err != nil || optErr != nil {
		t.Fatal(err, optErr)
	}
	pkt := ControlPacket{Version: 1, State: Down, DetectMult: 3, MyDiscriminator: 5, DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	b1, err := pkt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := conn.WriteTo(b1, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo2, p[0]))); err != nil {
			t.Fatal(err)
		}
	}
	st := b.waitStatus(pb.Key(), "dropping", func(st SessionStatus) bool { return st.Counters.Dropped == 3 })
	if st.Counters.LastDrop != "TTL 200 < min_ttl 254" || st.State != Down || st.Counters.PacketsIn != 0 {
		t.Errorf("status %+v, want TTL drops and state Down", st)
	}
	if n := logs.count("bfd_ttl_drop"); n != 1 {
		t.Errorf("%d TTL warnings for 3 drops, want 1", n)
	}
}

func TestManagerPicksSourceAddress(t *testing.T) {
	a, _ := startPair(t)
	p := Peer{Remote: lo2}
	a.set(p)
	st := a.waitStatus(p.Key(), "open", func(st SessionStatus) bool { return st.LocalPort != 0 })
	if !st.Local.IsLoopback() {
		t.Errorf("source address %s, want a loopback one", st.Local)
	}
}

func TestSetBeforeRun(t *testing.T) {
	m := NewManager(testLogger(t))
	if err := m.Set(context.Background(), []Peer{{Remote: lo2}}); err != nil {
		t.Fatal(err)
	}
	if got := m.Status(); len(got) != 0 {
		t.Errorf("status before Run: %+v", got)
	}
}

func TestSetRejectsBadPeers(t *testing.T) {
	tests := []struct {
		name  string
		peers []Peer
		want  string
	}{
		{"no remote", []Peer{{}}, "not a unicast address"},
		{"families", []Peer{{Local: lo1, Remote: lo6}}, "different families"},
		{"duplicate", []Peer{{Remote: lo2}, {Remote: lo2, MinTx: time.Second}}, "duplicate"},
		{"negative", []Peer{{Remote: lo2, MinRx: -time.Second}}, "min_rx"},
		{"huge", []Peer{{Remote: lo2, MinTx: 2 * time.Hour}}, "min_tx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(testLogger(t))
			err := m.Set(context.Background(), tt.peers)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Set: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestPeerDefaults(t *testing.T) {
	got := Peer{Remote: netip.MustParseAddr("::ffff:10.0.0.1"), Multihop: true}.withDefaults()
	want := Peer{Remote: netip.MustParseAddr("10.0.0.1"), Multihop: true, MinTx: 300 * time.Millisecond,
		MinRx: 300 * time.Millisecond, Multiplier: 3, MinTTL: 1}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	if got := (Peer{Remote: lo2, MinTTL: 10}).withDefaults().MinTTL; got != 255 {
		t.Errorf("single-hop min TTL %d, want 255", got)
	}
}
