package metrics

import (
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// snapshotA is a daemon with two peers, a BFD session and two services.
func snapshotA() Snapshot {
	return Snapshot{
		Peers: []Peer{
			{Name: "r1", Address: "192.0.2.1", Up: true, StateChanges: 5, UpdatesSent: 12, Announced: 3, Received: 100000, DiscardedUpdates: 250},
			{Name: "r2", Address: "2001:db8::2", Up: false, StateChanges: 2, UpdatesSent: 0, Announced: 0},
		},
		BFD: []BFDSession{{Peer: "r1", State: "Up", AuthFailures: 7, IgnoredDown: 2}},
		Services: []Service{
			{Name: "web", Up: true, Transitions: 1, CheckFailures: 4},
			{Name: "dns", Up: false, Drained: true, Transitions: 0, CheckFailures: 9},
		},
		LoadBalancers: []LoadBalancer{{Name: "lb1", Announced: true, Backends: []Backend{
			{Address: "10.0.0.1:80", Up: true, CheckSeries: "lb/lb1/10.0.0.1:80"},
			{Address: "[2001:db8::1]:80", Up: false},
		}}},
		Kubernetes: &Kubernetes{Connected: false, Synced: true, Allocator: true, Services: 4},
		Cluster:    &Cluster{Connected: true, Synced: true, Members: 3, LoadBalancers: 5, Serving: 2, NameConflict: true},
	}
}

func TestScrapeShowsTheSnapshot(t *testing.T) {
	src := &fakeSource{}
	src.set(snapshotA())
	_, s := setup(t, src)
	e := s.scrape()
	r1 := []string{"peer", "r1", "address", "192.0.2.1"}
	r2 := []string{"peer", "r2", "address", "2001:db8::2"}
	e.check(t, []want{
		{"vipd_bgp_session_up", r1, 1},
		{"vipd_bgp_session_up", r2, 0},
		{"vipd_bgp_session_state_changes_total", r1, 5},
		{"vipd_bgp_session_state_changes_total", r2, 2},
		{"vipd_bgp_updates_sent_total", r1, 12},
		{"vipd_bgp_updates_sent_total", r2, 0},
		{"vipd_bgp_announced_prefixes", r1, 3},
		{"vipd_bgp_announced_prefixes", r2, 0},
		{"vipd_bgp_received_prefixes", r1, 100000},
		{"vipd_bgp_received_prefixes", r2, 0},
		{"vipd_bgp_discarded_updates_total", r1, 250},
		{"vipd_bgp_discarded_updates_total", r2, 0},
		{"vipd_bfd_session_state", []string{"peer", "r1"}, 3},
		{"vipd_bfd_packets_discarded_total", []string{"peer", "r1", "reason", "auth"}, 7},
		{"vipd_bfd_packets_discarded_total", []string{"peer", "r1", "reason", "spoofed_down"}, 2},
		{"vipd_service_up", []string{"service", "web"}, 1},
		{"vipd_service_up", []string{"service", "dns"}, 0},
		{"vipd_service_drained", []string{"service", "web"}, 0},
		{"vipd_service_drained", []string{"service", "dns"}, 1},
		{"vipd_service_transitions_total", []string{"service", "web"}, 1},
		{"vipd_service_check_failures_total", []string{"service", "dns"}, 9},
		{"vipd_lb_announced", []string{"lb", "lb1"}, 1},
		{"vipd_lb_backend_up", []string{"lb", "lb1", "backend", "10.0.0.1:80"}, 1},
		{"vipd_lb_backend_up", []string{"lb", "lb1", "backend", "[2001:db8::1]:80"}, 0},
		{"vipd_kubernetes_connected", nil, 0},
		{"vipd_kubernetes_synced", nil, 1},
		{"vipd_kubernetes_allocator", nil, 1},
		{"vipd_kubernetes_services", nil, 4},
		{"vipd_cluster_connected", nil, 1},
		{"vipd_cluster_synced", nil, 1},
		{"vipd_cluster_members", nil, 3},
		{"vipd_cluster_name_conflict", nil, 1},
		{"vipd_cluster_load_balancers", []string{"serving", "true"}, 2},
		{"vipd_cluster_load_balancers", []string{"serving", "false"}, 3},
		{"vipd_config_reloads_total", []string{"result", "success"}, 0},
		{"vipd_config_reloads_total", []string{"result", "failure"}, 0},
		{"vipd_build_info", []string{"version", "1.2.3", "goversion", "go1.26", "revision", "abc123"}, 1},
	})

	for _, name := range e.names() {
		if !strings.HasPrefix(name, "vipd_") {
			t.Errorf("series %s lacks the vipd_ prefix", name)
		}
	}
	types := map[string]dto.MetricType{
		"vipd_bgp_session_up":                  dto.MetricType_GAUGE,
		"vipd_bgp_session_state_changes_total": dto.MetricType_COUNTER,
		"vipd_bgp_updates_sent_total":          dto.MetricType_COUNTER,
		"vipd_bgp_announced_prefixes":          dto.MetricType_GAUGE,
		"vipd_bgp_received_prefixes":           dto.MetricType_GAUGE,
		"vipd_bfd_packets_discarded_total":     dto.MetricType_COUNTER,
		"vipd_service_transitions_total":       dto.MetricType_COUNTER,
		"vipd_service_check_failures_total":    dto.MetricType_COUNTER,
		"vipd_config_reloads_total":            dto.MetricType_COUNTER,
	}
	for name, typ := range types {
		if got := e.families[name].GetType(); got != typ {
			t.Errorf("%s has type %v, want %v", name, got, typ)
		}
	}
	problems, err := testutil.GatherAndLint(s.reg)
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// The values follow the snapshot, and whatever left it leaves the scrape.
func TestScrapeFollowsTheSnapshot(t *testing.T) {
	src := &fakeSource{}
	src.set(snapshotA())
	_, s := setup(t, src)
	s.scrape()

	b := snapshotA()
	b.Peers = b.Peers[:1]
	b.Peers[0].Up, b.Peers[0].StateChanges, b.Peers[0].UpdatesSent, b.Peers[0].Announced = false, 7, 15, 0
	b.BFD[0].State = "Down"
	b.Services = b.Services[:1]
	b.Services[0].Up, b.Services[0].Drained, b.Services[0].Transitions, b.Services[0].CheckFailures = false, true, 2, 6
	src.set(b)

	e := s.scrape()
	r1 := []string{"peer", "r1", "address", "192.0.2.1"}
	e.check(t, []want{
		{"vipd_bgp_session_up", r1, 0},
		{"vipd_bgp_session_state_changes_total", r1, 7},
		{"vipd_bgp_updates_sent_total", r1, 15},
		{"vipd_bgp_announced_prefixes", r1, 0},
		{"vipd_bfd_session_state", []string{"peer", "r1"}, 1},
		{"vipd_service_up", []string{"service", "web"}, 0},
		{"vipd_service_drained", []string{"service", "web"}, 1},
		{"vipd_service_transitions_total", []string{"service", "web"}, 2},
		{"vipd_service_check_failures_total", []string{"service", "web"}, 6},
	})
	if got, ok := e.value("vipd_bgp_session_up", "peer", "r2", "address", "2001:db8::2"); ok {
		t.Errorf("removed peer r2 still has a series (%v)", got)
	}
	if got, ok := e.value("vipd_service_up", "service", "dns"); ok {
		t.Errorf("removed service dns still has a series (%v)", got)
	}

	src.set(Snapshot{})
	e = s.scrape()
	for _, name := range []string{"vipd_bgp_session_up", "vipd_bfd_session_state", "vipd_service_up"} {
		if n := e.count(name); n != 0 {
			t.Errorf("%d %s series with an empty snapshot", n, name)
		}
	}
}

func TestCheckDurations(t *testing.T) {
	src := &fakeSource{}
	src.set(snapshotA())
	m, s := setup(t, src)
	m.ObserveCheck("web", "http", 3*time.Millisecond)
	m.ObserveCheck("web", "http", 4*time.Millisecond)
	m.ObserveCheck("web", "exec", 2*time.Second)
	m.ObserveCheck("dns", "tcp", 300*time.Microsecond)
	m.ObserveCheck("lb/lb1/10.0.0.1:80", "tcp", time.Millisecond)

	e := s.scrape()
	tests := []struct {
		service, kind string
		count         uint64
		sum           float64
		le            float64 // a bucket bound ...
		inBucket      uint64  // ... and the observations at or below it
	}{
		{"web", "http", 2, 0.007, 0.005, 2},
		{"web", "exec", 1, 2, 1, 0},
		{"dns", "tcp", 1, 0.0003, 0.0005, 1},
	}
	for _, tt := range tests {
		h := e.series("vipd_check_duration_seconds", "service", tt.service, "kind", tt.kind).GetHistogram()
		if h.GetSampleCount() != tt.count || !near(h.GetSampleSum(), tt.sum) {
			t.Errorf("%s/%s: count %d sum %v, want %d and %v", tt.service, tt.kind, h.GetSampleCount(), h.GetSampleSum(), tt.count, tt.sum)
		}
		if got := bucket(h, tt.le); got != tt.inBucket {
			t.Errorf("%s/%s: %d observations <= %v, want %d", tt.service, tt.kind, got, tt.le, tt.inBucket)
		}
	}

	// web is removed: its histograms go at the next scrape, dns's stay.
	snap := snapshotA()
	snap.Services = snap.Services[1:]
	src.set(snap)
	e = s.scrape()
	if e.series("vipd_check_duration_seconds", "service", "web", "kind", "http") != nil {
		t.Error("the removed service's histogram is still scraped")
	}
	if e.series("vipd_check_duration_seconds", "service", "dns", "kind", "tcp") == nil {
		t.Error("the remaining service's histogram is gone")
	}
	if e.series("vipd_check_duration_seconds", "service", "lb/lb1/10.0.0.1:80", "kind", "tcp") == nil {
		t.Error("a checked backend's histogram is gone")
	}
	snap.LoadBalancers = nil
	src.set(snap)
	if e = s.scrape(); e.series("vipd_check_duration_seconds", "service", "lb/lb1/10.0.0.1:80", "kind", "tcp") != nil {
		t.Error("a removed load balancer's backend histogram is still scraped")
	}

	// Re-added, it starts afresh.
	src.set(snapshotA())
	m.ObserveCheck("web", "http", time.Millisecond)
	e = s.scrape()
	if n := e.series("vipd_check_duration_seconds", "service", "web", "kind", "http").GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("re-added service has %d observations, want 1", n)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// bucket returns the cumulative count of h's bucket with upper bound le.
func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return 1 << 63
}

func TestConfigReloads(t *testing.T) {
	m, s := setup(t, nil)
	clock := time.Unix(1_700_000_000, 500_000_000)
	m.now = func() time.Time { return clock }

	e := s.scrape()
	for _, name := range []string{"vipd_config_hash_info", "vipd_config_last_reload_success_timestamp_seconds", "vipd_config_last_reload_successful"} {
		if e.count(name) != 0 {
			t.Errorf("%s exists before a config was loaded", name)
		}
	}

	m.ConfigLoaded("aaa")
	s.scrape().check(t, []want{
		{"vipd_config_hash_info", []string{"hash", "aaa"}, 1},
		{"vipd_config_last_reload_success_timestamp_seconds", nil, 1_700_000_000.5},
		{"vipd_config_last_reload_successful", nil, 1},
		{"vipd_config_reloads_total", []string{"result", "success"}, 0},
		{"vipd_config_reloads_total", []string{"result", "failure"}, 0},
	})

	clock = clock.Add(time.Minute)
	m.ReloadResult(false, "bbb")
	e = s.scrape()
	e.check(t, []want{
		{"vipd_config_hash_info", []string{"hash", "aaa"}, 1},
		{"vipd_config_last_reload_success_timestamp_seconds", nil, 1_700_000_000.5},
		{"vipd_config_last_reload_successful", nil, 0},
		{"vipd_config_reloads_total", []string{"result", "success"}, 0},
		{"vipd_config_reloads_total", []string{"result", "failure"}, 1},
	})
	if n := e.count("vipd_config_hash_info"); n != 1 {
		t.Errorf("%d hash series after a failed reload, want the running config's only", n)
	}

	clock = clock.Add(time.Minute)
	m.ReloadResult(true, "ccc")
	e = s.scrape()
	e.check(t, []want{
		{"vipd_config_hash_info", []string{"hash", "ccc"}, 1},
		{"vipd_config_last_reload_success_timestamp_seconds", nil, 1_700_000_120.5},
		{"vipd_config_last_reload_successful", nil, 1},
		{"vipd_config_reloads_total", []string{"result", "success"}, 1},
		{"vipd_config_reloads_total", []string{"result", "failure"}, 1},
	})
	if n := e.count("vipd_config_hash_info"); n != 1 {
		t.Errorf("%d hash series after a reload, want the new config's only", n)
	}
}

func TestBFDStateValue(t *testing.T) {
	tests := []struct {
		state string
		want  float64
	}{
		{"AdminDown", 0},
		{"admin_down", 0},
		{"Admin Down", 0},
		{"ADMIN-DOWN", 0},
		{"Down", 1},
		{"down", 1},
		{"Init", 2},
		{"Up", 3},
		{"UP", 3},
		{"", -1},
		{"Established", -1},
	}
	for _, tt := range tests {
		if got := BFDStateValue(tt.state); got != tt.want {
			t.Errorf("BFDStateValue(%q) = %v, want %v", tt.state, got, tt.want)
		}
	}
}

func TestReadBuildInfo(t *testing.T) {
	b := ReadBuildInfo("v9.9.9")
	if b.Version != "v9.9.9" || b.GoVersion != runtime.Version() || b.Revision == "" {
		t.Errorf("ReadBuildInfo = %+v", b)
	}
}

func TestNilSource(t *testing.T) {
	_, s := setup(t, nil)
	e := s.scrape()
	if got := e.names(); len(got) != 2 || got[0] != "vipd_build_info" || got[1] != "vipd_config_reloads_total" {
		t.Errorf("families without a source = %v, want build info and reload counters only", got)
	}
}

func TestNewRefusesASecondRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, nil, BuildInfo{}); err != nil {
		t.Fatalf("first New: %v", err)
	}
	if _, err := New(reg, nil, BuildInfo{}); err == nil {
		t.Error("a second New on the same registry succeeded")
	}
}

// A label value Prometheus cannot carry (invalid UTF-8) loses its own
// series, not the scrape, and never panics.
func TestInvalidLabelKeepsTheRest(t *testing.T) {
	src := &fakeSource{}
	snap := snapshotA()
	snap.Services = append(snap.Services, Service{Name: "bad\xff", Up: true})
	src.set(snap)
	m, s := setup(t, src)
	m.ObserveCheck("bad\xff", "http", time.Millisecond)
	m.ObserveCheck("web", "http", time.Millisecond)
	e := s.scrape()
	e.check(t, []want{
		{"vipd_service_up", []string{"service", "web"}, 1},
		{"vipd_bgp_session_up", []string{"peer", "r1", "address", "192.0.2.1"}, 1},
	})
	if e.series("vipd_check_duration_seconds", "service", "web", "kind", "http") == nil {
		t.Error("the valid service's histogram is missing")
	}
}

func TestHandlerServesOnlyGetMetrics(t *testing.T) {
	_, s := setup(t, nil)
	base := strings.TrimSuffix(s.url, "/metrics")
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodHead, "/metrics", http.StatusOK},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, base+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

// Scrapes, observations, reloads and snapshot changes may all happen at
// once, and none is lost or torn: every scrape shows one whole snapshot,
// the counters of series that are never dropped only grow, and at the end
// they hold every observation and reload that was made. (web is in both
// snapshots, so its histogram is never dropped; dns's comes and goes, and
// gone's is dropped at every scrape.)
func TestConcurrentUse(t *testing.T) {
	src := &fakeSource{}
	src.set(snapshotA())
	m, s := setup(t, src)
	webOnly := Snapshot{Services: []Service{{Name: "web", Up: true}}}
	services := []string{"web", "dns", "gone"}
	done := make(chan struct{})
	var rounds [3]int // each worker's, written before wg.Wait returns
	var wg sync.WaitGroup
	for i := range services {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					rounds[i] = n
					return
				default:
				}
				m.ObserveCheck(services[i], "tcp", time.Duration(n)*time.Microsecond)
				m.ReloadResult(n%2 == 0, "h")
				if n%2 == 0 {
					src.set(webOnly)
				} else {
					src.set(snapshotA())
				}
			}
		})
	}
	webCount := func(e exposition) uint64 {
		return e.series("vipd_check_duration_seconds", "service", "web", "kind", "tcp").GetHistogram().GetSampleCount()
	}
	reloads := func(e exposition) (success, failure float64) {
		success, _ = e.value("vipd_config_reloads_total", "result", "success")
		failure, _ = e.value("vipd_config_reloads_total", "result", "failure")
		return success, failure
	}
	var lastWeb uint64
	var lastSuccess, lastFailure float64
	for i := range 20 {
		e := s.scrape()
		peers, svcs := e.count("vipd_bgp_session_up"), e.count("vipd_service_up")
		if !(peers == 2 && svcs == 2) && !(peers == 0 && svcs == 1) {
			t.Errorf("scrape %d: %d peers and %d services, want one whole snapshot (2 and 2, or 0 and 1)", i, peers, svcs)
		}
		web := webCount(e)
		success, failure := reloads(e)
		if web < lastWeb || success < lastSuccess || failure < lastFailure {
			t.Errorf("scrape %d: web checks %d, reloads %v/%v after %d, %v/%v: a counter went back",
				i, web, success, failure, lastWeb, lastSuccess, lastFailure)
		}
		lastWeb, lastSuccess, lastFailure = web, success, failure
	}
	close(done)
	wg.Wait()

	src.set(snapshotA())
	e := s.scrape()
	if got, want := webCount(e), uint64(rounds[0]); got != want {
		t.Errorf("web: %d check durations observed, want all %d", got, want)
	}
	var wantSuccess, wantFailure float64
	for _, n := range rounds {
		wantSuccess += float64((n + 1) / 2) // n%2 == 0 for n in [0, rounds)
		wantFailure += float64(n / 2)
	}
	if success, failure := reloads(e); success != wantSuccess || failure != wantFailure {
		t.Errorf("reloads success %v failure %v, want %v and %v", success, failure, wantSuccess, wantFailure)
	}
	if e.series("vipd_check_duration_seconds", "service", "gone", "kind", "tcp") != nil {
		t.Error("the check durations of gone, in no snapshot, outlived a scrape")
	}
}
