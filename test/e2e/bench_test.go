package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// Benchmarks run only under `make bench` (VIPD_BENCH=1): each prints a
// table of its figure, with the machine and the version of every program
// it ran, and writes the same as JSON to bench/results/. Tests never
// assert speed.
const benchTrials = 7

func skipUnlessBench(t *testing.T) {
	if os.Getenv("VIPD_BENCH") == "" {
		t.Skip("benchmark: run with make bench")
	}
}

// needPrograms fails the benchmark at once if a peer it runs beside vipd
// is not installed, naming the Debian package that has it.
func needPrograms(t *testing.T, programToPackage map[string]string) {
	t.Helper()
	for prog, pkg := range programToPackage {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("benchmark needs %s: apt-get install %s", prog, pkg)
		}
	}
}

var benchBin struct {
	once sync.Once
	path string
	err  error
}

// benchVipd returns a vipd binary built without -race, as users run it:
// the race detector slows vipd several times over. It lives next to
// vipdBin, in the directory TestMain removes. VIPD_BENCH_VIPD names another
// binary instead (an older build, for before-and-after figures).
func benchVipd(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("VIPD_BENCH_VIPD"); bin != "" {
		return bin
	}
	benchBin.once.Do(func() {
		benchBin.path = filepath.Join(filepath.Dir(vipdBin), "vipd-bench")
		version := "dev" // stamped as the Makefile does, for the tables
		if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
			version = strings.TrimSpace(string(out))
		}
		out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+version,
			"-o", benchBin.path, "github.com/vipd/vipd/cmd/vipd").CombinedOutput()
		if err != nil {
			benchBin.err = fmt.Errorf("build vipd without -race: %w\n%s", err, out)
		}
	})
	if benchBin.err != nil {
		t.Fatal(benchBin.err)
	}
	return benchBin.path
}

// startBenchVipd is startVipd with the benchmark binary.
func startBenchVipd(t *testing.T, node *testnet.Node, config string) *testnet.Process {
	t.Helper()
	return startBinary(t, node, benchVipd(t), config+node.RuntimeYAML())
}

// unit says what a metric's values are and how they print.
type unit string

const (
	unitSeconds unit = "seconds"
	unitBytes   unit = "bytes"
	unitCores   unit = "cores" // CPU time over wall time
	unitRate    unit = "per_second"
	unitBitRate unit = "bits_per_second"
	unitRatio   unit = "ratio"
	unitCount   unit = "count"
)

func (u unit) format(v float64) string {
	switch u {
	case unitSeconds:
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	case unitBytes:
		return fmt.Sprintf("%.1fMiB", v/(1<<20))
	case unitCores:
		return fmt.Sprintf("%.3f", v)
	case unitRate:
		return fmt.Sprintf("%.0f/s", v)
	case unitBitRate:
		return fmt.Sprintf("%.2fGbit/s", v/1e9)
	case unitRatio:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// metric is one measured quantity of a row over its trials.
type metric struct {
	Name   string    `json:"name"`
	Unit   unit      `json:"unit"`
	Trials []float64 `json:"trials"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

func newMetric(name string, u unit, trials []float64) metric {
	s := slices.Sorted(slices.Values(trials))
	m := metric{Name: name, Unit: u, Trials: trials, Min: s[0], Max: s[len(s)-1], Median: s[len(s)/2]}
	if len(s)%2 == 0 {
		m.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m
}

func timeMetric(name string, trials []time.Duration) metric {
	var secs []float64
	for _, d := range trials {
		secs = append(secs, d.Seconds())
	}
	return newMetric(name, unitSeconds, secs)
}

// benchRow is one setup of a figure: who announced (Setup) to which
// router, and what was measured.
type benchRow struct {
	Setup   string   `json:"setup"`
	Router  string   `json:"router"`
	Metrics []metric `json:"metrics"`
}

// benchTable is one figure: its rows, the machine it ran on, the versions
// of every program its rows ran, and how long the benchmark took.
type benchTable struct {
	Name     string        `json:"benchmark"`
	Title    string        `json:"title"`
	Date     time.Time     `json:"date"`
	Machine  string        `json:"machine"`
	Rows     []benchRow    `json:"rows"`
	Versions []string      `json:"versions"`
	Wall     time.Duration `json:"wall_ns"`
}

// newBenchTable starts a figure's table; its wall time counts from here.
func newBenchTable(name, title string) *benchTable {
	return &benchTable{Name: name, Title: title, Date: time.Now(), Machine: machine()}
}

// version adds the version of a program the figure ran, once.
func (b *benchTable) version(v string) {
	if !slices.Contains(b.Versions, v) {
		b.Versions = append(b.Versions, v)
	}
}

// report prints the table and writes bench/results/NAME.json.
func (b *benchTable) report(t *testing.T) {
	t.Helper()
	b.Wall = time.Since(b.Date)
	var out bytes.Buffer
	fmt.Fprintf(&out, "\n%s\n", b.Title)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	if len(b.Rows) > 0 {
		fmt.Fprint(tw, "SETUP\tROUTER")
		for _, m := range b.Rows[0].Metrics {
			fmt.Fprintf(tw, "\t%s\tMIN\tMAX", strings.ToUpper(m.Name))
		}
		fmt.Fprintln(tw, "\tTRIALS")
	}
	for _, r := range b.Rows {
		fmt.Fprintf(tw, "%s\t%s", r.Setup, r.Router)
		trials := 0
		for _, m := range r.Metrics {
			fmt.Fprintf(tw, "\t%s\t%s\t%s", m.Unit.format(m.Median), m.Unit.format(m.Min), m.Unit.format(m.Max))
			trials = max(trials, len(m.Trials))
		}
		fmt.Fprintf(tw, "\t%d\n", trials)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "versions: %s\nmachine: %s; wall time %v\n", strings.Join(b.Versions, "; "), b.Machine, b.Wall.Round(time.Second))
	fmt.Print(out.String())
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, b.Name+".json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// machine describes the machine: CPUs, kernel and load, which on a shared
// machine says how noisy the figures may be.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%d × %s, Linux %s, load %s at start", runtime.NumCPU(), model, kernel, load)
}

// programVersion returns the first line a program prints for its version
// (on stdout or stderr), up to any parenthesis, or why it could not.
func programVersion(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line, _, _ = strings.Cut(line, " (") // curl's build details
	if err != nil || line == "" {
		return fmt.Sprintf("%s: version unknown (%v)", argv[0], err)
	}
	return line
}

// routerVersion is the version of a router kind's BGP daemon.
func routerVersion(kind testnet.RouterKind) string {
	if kind == testnet.FRR {
		return programVersion("/usr/lib/frr/bgpd", "--version")
	}
	return programVersion("bird", "--version")
}

// vipdVersion is the version of the benchmark's vipd binary.
func vipdVersion(t *testing.T) string { return programVersion(benchVipd(t), "version") }

// pollFIBGone polls the router's FIB every 10 ms (bounded) until hop has
// left the VIP's route, and returns the time since cut.
func pollFIBGone(t *testing.T, r *testnet.Router, hop netip.Addr, cut time.Time) time.Duration {
	t.Helper()
	for time.Since(cut) < convergeTimeout {
		hops, err := r.FIB(t.Context(), vip4)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(hops, hop) {
			return time.Since(cut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never left the FIB", hop)
	return 0
}

// poll calls check every interval until it returns nil, for at most
// bound: testnet.WaitFor where its 100 ms step is too coarse for a figure.
func poll(ctx context.Context, bound, interval time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", bound, err)
		case <-time.After(interval):
		}
	}
}

// procStatus returns a field of /proc/PID/status in bytes, e.g. VmHWM
// (peak resident set) or VmRSS.
func procStatus(t *testing.T, pid int, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) != 2 || f[1] != "kB" {
				t.Fatalf("/proc/%d/status %s: %q", pid, field, v)
			}
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// restartTrials is fewer than benchTrials: one trial can take minutes.
const restartTrials = 3

// TestBenchPlannedRestart measures how long a restarted vipd's node stays
// out of the router's ECMP set, with the routers at their default timers:
// a plain restart, and one with bgp.graceful_restart.
func TestBenchPlannedRestart(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("planned-restart", "planned restart (SIGTERM, start again) → node out of the router's ECMP set, routers at default timers")
	tb.version(vipdVersion(t))
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		tb.version(routerVersion(kind))
		for _, gr := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/graceful=%v", kind, gr), func(t *testing.T) { tb.Rows = append(tb.Rows, benchRestart(t, kind, gr)) })
		}
	}
	tb.report(t)
}

func benchRestart(t *testing.T, kind testnet.RouterKind, gracefulRestart bool) benchRow {
	nodes := nodeSpecs(2)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: kind, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(nodes, 4200000000, ""), DefaultTimers: true}},
		Nodes: nodes,
	})
	r, n1, n2 := w.Router("r1"), w.Node("n1"), w.Node("n2")
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  graceful_restart: %v
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16]
`, gracefulRestart, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	p := startBenchVipd(t, n1, config)
	startBenchVipd(t, n2, config)
	setup := "vipd restart"
	if gracefulRestart {
		setup = "vipd restart, graceful"
	}
	const bound = 6 * time.Minute // BIRD's error wait reaches 300 s
	var trials []time.Duration
	for range restartTrials {
		if err := r.WaitFIB(t.Context(), vip4, []netip.Addr{n1.Addr4(), n2.Addr4()}, bound); err != nil {
			t.Fatal(err)
		}
		stop := time.Now()
		if err := p.Stop(stopTimeout); err != nil {
			t.Fatal(err)
		}
		p = startBenchVipd(t, n1, config)
		trials = append(trials, timeOutOfECMP(t, r, n1.Addr4(), stop, bound))
	}
	return benchRow{Setup: setup, Router: string(kind), Metrics: []metric{timeMetric("out", trials)}}
}

// timeOutOfECMP polls the FIB every 20 ms (bounded) from start and returns
// how long hop was missing from the VIP's route: 0 if it never left.
func timeOutOfECMP(t *testing.T, r *testnet.Router, hop netip.Addr, start time.Time, bound time.Duration) time.Duration {
	t.Helper()
	var left time.Time
	settle := start.Add(15 * time.Second) // a route that never leaves: watch this long
	for time.Since(start) < bound {
		hops, err := r.FIB(t.Context(), vip4)
		if err != nil {
			t.Fatal(err)
		}
		in := slices.Contains(hops, hop)
		switch {
		case !in && left.IsZero():
			left = time.Now()
		case in && !left.IsZero():
			return time.Since(left)
		case in && left.IsZero() && time.Now().After(settle):
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not return to the FIB within %v", hop, bound)
	return 0
}
