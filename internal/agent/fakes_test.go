package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/dataplane"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/vip"
)

// waitTimeout bounds every wait in these tests; a pass takes milliseconds.
const waitTimeout = 10 * time.Second

// recorder is the one ordered log of every change the fakes see, so a
// test can check the order across actuators: "rules +lb/web", "bind
// 198.51.100.1", "announce 198.51.100.1/32", "withdraw …", "unbind …".
type recorder struct {
	mu      sync.Mutex
	events  []string
	changed chan struct{} // closed and replaced on every event
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) snapshot() ([]string, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), r.changed
}

// mark returns the current length of the log, to look only at what
// happens after it.
func (r *recorder) mark() int {
	events, _ := r.snapshot()
	return len(events)
}

// waitFor blocks until every event in want has been recorded at or after
// index from, and returns the log from there.
func (r *recorder) waitFor(t *testing.T, from int, want ...string) []string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		events, changed := r.snapshot()
		events = events[min(from, len(events)):]
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return find(events, w) >= 0 })
		if len(missing) == 0 {
			return events
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("events %q never came; log since the mark:\n  %s", missing, strings.Join(events, "\n  "))
		}
	}
}

// find returns the index of the first event that starts with prefix, or -1.
func find(events []string, prefix string) int {
	return slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// before fails unless an event starting with first comes before one
// starting with second.
func before(t *testing.T, events []string, first, second string) {
	t.Helper()
	i, j := find(events, first), find(events, second)
	if i < 0 || j < 0 || i > j {
		t.Errorf("want %q before %q; log:\n  %s", first, second, strings.Join(events, "\n  "))
	}
}

// fakeSpeaker records announcements and withdrawals by prefix.
type fakeSpeaker struct {
	rec *recorder

	mu        sync.Mutex
	routes    map[netip.Prefix]bgp.Route
	peers     []config.Peer
	failPeers func(peers []config.Peer) error // if set, SetPeers applies half, then fails with its error
	blockPeer netip.Addr                      // SetPeers with this peer blocks until its ctx ends
}

func (s *fakeSpeaker) SetPeers(ctx context.Context, peers []config.Peer) error {
	if slices.ContainsFunc(peers, func(p config.Peer) bool { return p.Address == s.blockPeer }) {
		s.rec.add("peers blocked")
		<-ctx.Done()
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPeers != nil {
		if err := s.failPeers(peers); err != nil {
			s.peers = peers[1:] // a part of the new set
			s.rec.add("peers %s", peerNames(s.peers))
			return err
		}
	}
	s.peers = slices.Clone(peers)
	s.rec.add("peers %s", peerNames(peers))
	return nil
}

func peerNames(peers []config.Peer) string {
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

func (s *fakeSpeaker) SetRoutes(_ context.Context, routes []bgp.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[netip.Prefix]bgp.Route, len(routes))
	for _, r := range routes {
		want[r.Prefix] = r
	}
	for _, p := range slices.SortedFunc(maps.Keys(s.routes), comparePrefixes) {
		if _, ok := want[p]; !ok {
			s.rec.add("withdraw %s", p)
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(want), comparePrefixes) {
		if have, ok := s.routes[p]; !ok || fmt.Sprint(have) != fmt.Sprint(want[p]) {
			s.rec.add("announce %s med %d communities %v", p, want[p].MED, want[p].Communities)
		}
	}
	s.routes = want
	return nil
}

func comparePrefixes(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) }

func (s *fakeSpeaker) Announced(p netip.Prefix) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.routes[p]
	return ok
}

func (s *fakeSpeaker) ResetPeer(context.Context, netip.Addr, string) error { return nil }

func (s *fakeSpeaker) Status() bgp.Status { return bgp.Status{} }

func (s *fakeSpeaker) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.add("bgp stop")
	return nil
}

func (s *fakeSpeaker) peerList() []config.Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers)
}

// fakeBinder records addresses added and removed.
type fakeBinder struct {
	rec   *recorder
	mu    sync.Mutex
	bound []vip.Address
}

func (b *fakeBinder) Set(ctx context.Context, desired []vip.Address) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.bound {
		if !slices.Contains(desired, a) {
			b.rec.add("unbind %s", a.Addr)
		}
	}
	for _, a := range desired {
		if !slices.Contains(b.bound, a) {
			b.rec.add("bind %s", a.Addr)
		}
	}
	b.bound = slices.Clone(desired)
	return nil
}

func (b *fakeBinder) ForeignAddrs() (map[netip.Addr]string, error) { return nil, nil }

func (b *fakeBinder) Bound() []vip.Address {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bound)
}

// fakeDataPlane records load balancers' rules and port filters by name:
// "rules +lb ADDRESS" when added, "rules ~lb ADDRESS" when changed,
// "rules -filter ADDRESS" when removed.
type fakeDataPlane struct {
	rec  *recorder
	mu   sync.Mutex
	have map[string]string
	fail error // Set fails with it, changing nothing
}

func (d *fakeDataPlane) Set(ctx context.Context, s dataplane.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	if err := s.Validate(); err != nil { // as the real one refuses it
		d.rec.add("rules refused: %v", err)
		return err
	}
	want := make(map[string]string) // what is programmed for each address
	for _, l := range s.LoadBalancers {
		want["lb "+l.Address.String()] = fmt.Sprint(l.Backends)
	}
	for _, f := range s.Filters {
		want["filter "+f.Address.String()] = fmt.Sprint(f.Ports)
	}
	for _, k := range slices.Sorted(maps.Keys(d.have)) {
		if _, ok := want[k]; !ok {
			d.rec.add("rules -%s", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		switch have, ok := d.have[k]; {
		case !ok:
			d.rec.add("rules +%s", k)
		case have != want[k]:
			d.rec.add("rules ~%s", k)
		}
	}
	d.have = want
	return nil
}

func (d *fakeDataPlane) Delete(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.have = nil
	d.rec.add("rules deleted")
	return nil
}

func (d *fakeDataPlane) HostSettings() ([]dataplane.Setting, error) { return nil, nil }

func (d *fakeDataPlane) setFail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

// fakeBFD records the BFD peers.
type fakeBFD struct {
	rec  *recorder
	mu   sync.Mutex
	fail func(peers []bfd.Peer) error // if set, Set fails with its error, changing nothing
}

func (b *fakeBFD) Set(_ context.Context, peers []bfd.Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		if err := b.fail(peers); err != nil {
			return err
		}
	}
	b.rec.add("bfd %d sessions", len(peers))
	return nil
}

func (b *fakeBFD) Status() []bfd.SessionStatus { return nil }

func (b *fakeBFD) Stop() error {
	b.rec.add("bfd stop")
	return nil
}

// harness is an agent with fakes at its seams, running in the background.
type harness struct {
	*Agent
	rec     *recorder
	speaker *fakeSpeaker
	binder  *fakeBinder
	dp      *fakeDataPlane
	bfd     *fakeBFD
	dir     string
	started atomic.Int32 // speakers started
	cancel  context.CancelFunc
	done    chan error
}

// testConfig is a config for the harness; %[1]s is its directory.
const testConfig = `
bgp:
  asn: 65001
  router_id: 192.0.2.1
  allowed_prefixes: [198.51.100.0/24]
  peers:
    - {name: r1, address: 192.0.2.254, asn: 65000}
services:
  - name: web
    vips: [198.51.100.1, 198.51.100.2]
    ports: [80]
  - name: dns
    vips: [198.51.100.3]
pools:
  - {name: default, prefixes: [198.51.100.128/28]}
state_dir: %[1]s/state
api: {socket: %[1]s/vipd.sock}
metrics: {listen: ""}
`

// newHarness builds an agent from yaml (a testConfig-like text) with
// fakes at every seam; adjust lets a test change the agent before Run.
func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vipd.yaml")
	writeConfig(t, path, fmt.Sprintf(yaml, dir))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	h := &harness{
		rec:     rec,
		speaker: &fakeSpeaker{rec: rec},
		binder:  &fakeBinder{rec: rec},
		dp:      &fakeDataPlane{rec: rec},
		bfd:     &fakeBFD{rec: rec},
		dir:     dir,
	}
	h.Agent = New(path, cfg, "test", slog.New(slog.DiscardHandler))
	h.act = actuators{
		startSpeaker: func(cfg *config.Config, _ netip.Addr, restarting bool, _ *slog.Logger) (Speaker, error) {
			h.started.Add(1)
			h.rec.add("bgp start restarting=%v", restarting)
			if err := h.speaker.SetPeers(context.Background(), cfg.BGP.Peers); err != nil {
				return nil, err
			}
			return h.speaker, nil
		},
		startBFD: func(peers []bfd.Peer, _ *slog.Logger, _ func(context.Context, bfd.Event)) (BFD, error) {
			return h.bfd, h.bfd.Set(context.Background(), peers)
		},
		newBinder:    func(*store.Store, *slog.Logger) Binder { return h.binder },
		newDataPlane: func(*slog.Logger) (DataPlane, error) { return h.dp, nil },
	}
	return h
}

// start runs the agent and waits for its first pass.
func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.Run(ctx) }()
	t.Cleanup(func() {
		if h.cancel != nil {
			h.stop(t)
		}
	})
	h.pass(t)
}

// pass waits until the loop has run a pass after now. The loop takes the
// request only once it runs, so this also waits for the start.
func (h *harness) pass(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.do(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("no pass: %v", err)
	}
}

// stop ends Run and returns its error.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after its context ended")
		return nil
	}
}

// reloadWith writes yaml as the config file and reloads.
func (h *harness) reloadWith(t *testing.T, yaml string) error {
	t.Helper()
	writeConfig(t, h.path, fmt.Sprintf(yaml, h.dir))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := h.Reload(ctx)
	return err
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

var errInjected = errors.New("injected failure")
