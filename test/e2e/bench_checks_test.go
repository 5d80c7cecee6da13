package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// Check density: the checks spread over densityListeners servers on
// 127.0.0.1:densityBasePort and up; each setup is measured densityWindows
// times for densityWindow, densitySettle after its last VIP is announced
// or densityWarmup has passed: a vipd that cannot keep up is measured
// too, and shows as fewer checks and VIPs announced.
const (
	densityListeners = 50
	densityBasePort  = 20000
	densityWindows   = 3
	densityWindow    = 5 * time.Second
	densitySettle    = 5 * time.Second
	densityWarmup    = time.Minute
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture vipd supports.
const clockTicks = 100

// TestBenchCheckDensity measures vipd's CPU (as a share of one core) and
// resident memory while it runs N services (N = 1k, 10k), each with one
// tcp or one http check at the default 1 s interval, against local
// servers in its node's namespace, with every service up and announced to
// the router. The servers are densityListeners listeners in the test
// process, each check a new connection (vipd's probes use no keep-alive);
// "checks" counts the connections they accepted, so a round vipd skips or
// loses shows, as does a service that flaps in "announced" (routes from
// vipd in the router's table at the end of each window). "servers cpu" is
// the test process's CPU, nearly all of it the servers': on a small
// machine they compete with vipd. "busiest 10ms" is how many checks per
// second land in the busiest 10 ms slot of the second (by accept time):
// with rounds spread over the interval it is near checks/100, with every
// service in phase it approaches all of them. Target: 10k checks under
// one core.
func TestBenchCheckDensity(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("check-density", "health checks at 1 s, one per service, against local servers: vipd's CPU and RSS (target: 10k checks < 1 core)")
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	servers := startDensityServers(t, n1)
	for _, kind := range []string{"tcp", "http"} {
		for _, n := range []int{1000, 10000} {
			t.Run(fmt.Sprintf("%s/%dk", kind, n/1000), func(t *testing.T) {
				tb.Rows = append(tb.Rows, benchDensity(t, r, n1, servers, kind, n))
			})
		}
	}
	tb.report(t)
}

// benchDensity runs vipd on node with n services checked by kind, waits
// until the router holds all their VIPs, and measures densityWindows
// windows.
func benchDensity(t *testing.T, r *testnet.Router, node *testnet.Node, servers *densityServers, kind string, n int) benchRow {
	t.Helper()
	waitRouterDrained(t, r)
	p := startBenchVipd(t, node, densityConfig(r, kind, n))
	err := poll(t.Context(), densityWarmup, 200*time.Millisecond, func(ctx context.Context) error {
		st, err := birdProtocols(ctx, r)
		if err != nil {
			return err
		}
		if got := st.peers[node.Addr4()].imported; got < n {
			return fmt.Errorf("%d of %d VIPs announced", got, n)
		}
		return nil
	})
	if err != nil {
		t.Logf("%s: measuring anyway: %v", t.Name(), err)
	}
	time.Sleep(densitySettle)
	var cores, serverCPU, rss, rate, announced, busiest []float64
	for range densityWindows {
		servers.resetSlots()
		cpu0, self0, served0, start := procCPU(t, p.PID()), procCPU(t, os.Getpid()), servers.accepted.Load(), time.Now()
		time.Sleep(densityWindow)
		cpu1, self1, served1, elapsed := procCPU(t, p.PID()), procCPU(t, os.Getpid()), servers.accepted.Load(), time.Since(start)
		cores = append(cores, (cpu1-cpu0).Seconds()/elapsed.Seconds())
		serverCPU = append(serverCPU, (self1-self0).Seconds()/elapsed.Seconds())
		rate = append(rate, float64(served1-served0)/elapsed.Seconds())
		busiest = append(busiest, float64(servers.busiestSlot())/elapsed.Seconds())
		rss = append(rss, procStatus(t, p.PID(), "VmRSS"))
		st, err := birdProtocols(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		announced = append(announced, float64(st.peers[node.Addr4()].imported))
	}
	if err := p.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
	return benchRow{
		Setup:  fmt.Sprintf("vipd, %dk %s checks", n/1000, kind),
		Router: string(r.Kind()),
		Metrics: []metric{
			newMetric("cpu", unitCores, cores), newMetric("rss", unitBytes, rss),
			newMetric("checks", unitRate, rate), newMetric("announced", unitCount, announced),
			newMetric("servers cpu", unitCores, serverCPU), newMetric("busiest 10ms", unitCount, busiest),
		},
	}
}

// densityConfig is vipd's config for n services, each with one VIP
// (bind: false) and one check of kind against one of the servers.
func densityConfig(r *testnet.Router, kind string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bgp:\n  asn: 4200000000\n  allowed_prefixes: [%s]\n  peers:\n%sservices:\n",
		scaleRange, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	for i, vip := range scalePrefixes(n) {
		target := "127.0.0.1:" + strconv.Itoa(densityBasePort+i%densityListeners)
		check := fmt.Sprintf("{tcp: {address: %q}}", target)
		if kind == "http" {
			check = fmt.Sprintf("{http: {url: %q}}", "http://"+target+"/healthz")
		}
		fmt.Fprintf(&b, "  - {name: s%d, bind: false, vips: [%s], checks: [%s]}\n", i, vip.Addr(), check)
	}
	return b.String()
}

// densitySlots is the number of 10 ms slots in a second.
const densitySlots = 100

// densityServers counts the connections its servers accept, in all and
// by the 10 ms slot of the second they came in.
type densityServers struct {
	accepted atomic.Int64
	slots    [densitySlots]atomic.Int64
}

func (d *densityServers) resetSlots() {
	for i := range d.slots {
		d.slots[i].Store(0)
	}
}

// busiestSlot is the count of the slot with the most connections.
func (d *densityServers) busiestSlot() int64 {
	var most int64
	for i := range d.slots {
		most = max(most, d.slots[i].Load())
	}
	return most
}

// startDensityServers serves HTTP 200 on densityListeners ports of node's
// loopback until the test ends, and counts the connections accepted: a
// tcp check opens and closes one, an http check sends one request on one.
func startDensityServers(t *testing.T, node *testnet.Node) *densityServers {
	t.Helper()
	d := &densityServers{}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				d.accepted.Add(1)
				d.slots[time.Now().Nanosecond()/int(10*time.Millisecond)].Add(1)
			}
		},
	}
	for i := range densityListeners {
		l, err := node.Listen("tcp", "127.0.0.1:"+strconv.Itoa(densityBasePort+i))
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
	}
	t.Cleanup(func() { srv.Close() })
	return d
}

// procCPU returns the CPU time (user and system) process pid has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name start at field 3;
	// utime and stime are fields 14 and 15.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
