package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// failoverRise and failoverFall are the thresholds of every failover setup.
const (
	failoverRise = 2
	failoverFall = 2
)

// healthURL is the check's target, a server in the node's namespace.
const healthURL = "http://127.0.0.1:8080/healthz"

// TestBenchHealthFailover measures the time from a service's health check
// starting to fail (its HTTP server answers 503 from that instant) to the
// node's nexthop leaving the router's kernel FIB: vipd's http check at
// interval 100 ms and 1 s, beside ExaBGP's healthcheck (curl, with
// --withdraw-on-down) at the same intervals with its fast interval equal,
// the fastest it goes at that interval. Both rise 2, fall 2, one after the
// other on the same node and router. Target: ≤ interval × fall + 100 ms.
func TestBenchHealthFailover(t *testing.T) {
	skipUnlessBench(t)
	needPrograms(t, map[string]string{"exabgp": "exabgp", "/usr/bin/exabgp-healthcheck": "exabgp", "curl": "curl"})
	tb := newBenchTable("health-failover", fmt.Sprintf(
		"health check fails → nexthop gone from the router's FIB (rise %d, fall %d; target ≤ interval × fall + 100ms)", failoverRise, failoverFall))
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	tb.version(programVersion("exabgp", "--version"))
	tb.version(programVersion("curl", "--version"))
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	srv := startHealthServer(t, n1, "127.0.0.1:8080")
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Second} {
		// Each speaker stops at the end of its subtest.
		t.Run(fmt.Sprintf("vipd/%v", interval), func(t *testing.T) {
			startBenchVipd(t, n1, webConfig(r1Peer(r), fmt.Sprintf(`    interval: %v
    rise: %d
    fall: %d
    checks:
      - http: {url: %q}
`, interval, failoverRise, failoverFall, healthURL)))
			tb.Rows = append(tb.Rows, benchRow{
				Setup:   fmt.Sprintf("vipd http, interval %v", interval),
				Router:  string(r.Kind()),
				Metrics: []metric{timeMetric("time", failoverTrials(t, r, n1, srv, interval))},
			})
		})
		t.Run(fmt.Sprintf("exabgp/%v", interval), func(t *testing.T) {
			startExaBGP(t, n1, r, interval)
			tb.Rows = append(tb.Rows, benchRow{
				Setup:   fmt.Sprintf("exabgp-healthcheck curl, interval %v", interval),
				Router:  string(r.Kind()),
				Metrics: []metric{timeMetric("time", failoverTrials(t, r, n1, srv, interval))},
			})
		})
	}
	tb.report(t)
}

// failoverTrials makes node's check fail benchTrials times, each time at
// a different phase of a check interval, and returns how long its
// nexthop took to leave the router's FIB. The check passes again after
// each trial.
func failoverTrials(t *testing.T, r *testnet.Router, node *testnet.Node, srv *healthServer, interval time.Duration) []time.Duration {
	t.Helper()
	var trials []time.Duration
	for i := range benchTrials {
		srv.failing.Store(false)
		waitFIB(t, r, vip4, node.Addr4())
		time.Sleep(interval + interval*time.Duration(i)/benchTrials)
		srv.failing.Store(true)
		trials = append(trials, pollFIBGone(t, r, node.Addr4(), time.Now()))
	}
	srv.failing.Store(false)
	return trials
}

// healthServer answers every HTTP request with 200, or 503 while failing.
type healthServer struct {
	failing atomic.Bool
}

func (s *healthServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if s.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// startHealthServer serves a healthServer on address in node's namespace
// until the test ends.
func startHealthServer(t *testing.T, node *testnet.Node, address string) *healthServer {
	t.Helper()
	l, err := node.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	s := &healthServer{}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// startExaBGP runs ExaBGP on node with its healthcheck as the process
// that announces vip4 to router r: curl against healthURL every interval
// (and every interval while rising or falling), withdrawing on down,
// until the test ends.
func startExaBGP(t *testing.T, node *testnet.Node, r *testnet.Router, interval time.Duration) {
	t.Helper()
	startExaBGPCheck(t, node, r, fmt.Sprintf("exabgp-%v", interval), exabgpCheck{
		Interval: interval, FastInterval: interval, Timeout: time.Second, Rise: failoverRise, Fall: failoverFall,
		Command: "curl -sf -o /dev/null --max-time 1 " + healthURL,
	})
}

// exabgpCheck is an exabgp-healthcheck setting; a zero field keeps the
// healthcheck's own default (interval 5, fast interval 1, timeout 5,
// rise 3, fall 3).
type exabgpCheck struct {
	Interval, FastInterval, Timeout time.Duration
	Rise, Fall                      int
	Command                         string
}

// conf renders the healthcheck's config file for vip4.
func (c exabgpCheck) conf() []byte {
	var b strings.Builder
	b.WriteString("no-syslog\nwithdraw-on-down\nno-ip-setup\n")
	fmt.Fprintf(&b, "ip = %s\ncommand = %s\n", vip4, c.Command)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", c.Interval}, {"fast-interval", c.FastInterval}, {"timeout", c.Timeout}} {
		if d.v > 0 {
			fmt.Fprintf(&b, "%s = %g\n", d.key, d.v.Seconds()) // --timeout: whole seconds, 1 the shortest
		}
	}
	if c.Rise > 0 {
		fmt.Fprintf(&b, "rise = %d\n", c.Rise)
	}
	if c.Fall > 0 {
		fmt.Fprintf(&b, "fall = %d\n", c.Fall)
	}
	return []byte(b.String())
}

// startExaBGPCheck runs ExaBGP on node with its healthcheck at setting c
// as the process that announces vip4 to router r, until the test ends.
func startExaBGPCheck(t *testing.T, node *testnet.Node, r *testnet.Router, name string, c exabgpCheck) *testnet.Process {
	t.Helper()
	check := filepath.Join(node.Dir(), name+"-healthcheck.conf")
	if err := os.WriteFile(check, c.conf(), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(node.Dir(), name+".conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, `process healthcheck {
	run /usr/bin/exabgp-healthcheck --config %[1]s;
	encoder text;
}
neighbor %[2]s {
	router-id %[3]s;
	local-address %[3]s;
	local-as 4200000000;
	peer-as %[4]d;
	hold-time 9;
	family { ipv4 unicast; }
	api { processes [ healthcheck ]; }
}
`, check, r.Addr4(), node.Addr4(), r.ASN()), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// No privilege drop, no CLI pipes: neither matters to the figure.
	p, err := node.StartProcess("exabgp", "env", "exabgp_daemon_drop=false", "exabgp_api_cli=false", "exabgp", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(stopTimeout); err != nil {
			t.Errorf("stop %s: %v", p.Name(), err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", p.Name(), p.Log())
		}
	})
	return p
}
