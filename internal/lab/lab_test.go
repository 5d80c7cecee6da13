package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// buildVipd builds the vipd binary the lab's nodes run.
func buildVipd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vipd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vipd/vipd/cmd/vipd").CombinedOutput(); err != nil {
		t.Fatalf("build vipd: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "lab", "serve", "--help").CombinedOutput(); err != nil {
		t.Fatalf("vipd has no `lab serve` (is newLabCmd registered in cmd/vipd/main.go?): %v\n%s", err, out)
	}
	return bin
}

// skipUnlessLab skips as testnet does, and also without nft.
func skipUnlessLab(t *testing.T) {
	t.Helper()
	worldtest.SkipUnlessAvailable(t, spec("vt", ""))
	if _, err := exec.LookPath("nft"); err != nil {
		worldtest.SkipOrFail(t, "lab: needs nft")
	}
}

// TestLab runs the lab as its commands do, each later step on a lab
// loaded from the record as a new `vipd lab` process would: up, the
// route and the spread, fail, heal, kill, status, down.
func TestLab(t *testing.T) {
	skipUnlessLab(t)
	opts := Options{Prefix: fmt.Sprintf("vt%d-lab", os.Getpid()), StateDir: t.TempDir(), Binary: buildVipd(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	up, err := Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", up.world.LogTails(40))
		}
		if !downed {
			if err := up.Down(); err != nil {
				t.Errorf("down: %v", err)
			}
		}
	})
	open := func() *Lab {
		t.Helper()
		l, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	nodes := up.world.Nodes()
	wantFIB := func(l *Lab, present ...*testnet.Node) {
		t.Helper()
		for _, vip := range vips {
			var want []netip.Addr
			for _, n := range present {
				want = append(want, nodeAddr(n, vip))
			}
			slices.SortFunc(want, netip.Addr.Compare)
			got, err := l.nexthops(ctx, vip)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("router's nexthops for %s: %v, %v; want %v", vip, got, err, want)
			}
		}
	}
	wantChange := func(c Change, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		for _, tm := range c.Timings {
			if tm.Already || tm.After <= 0 {
				t.Errorf("%s %s: timing %+v, want one measured", c.Node, tm.VIP, tm)
			}
		}
	}

	if _, err := Up(ctx, opts); !errors.Is(err, ErrExists) {
		t.Errorf("second Up: %v, want ErrExists", err)
	}
	l := open()
	wantFIB(l, nodes...)
	route, err := l.Route(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(route, "nexthop via"); n != 6 {
		t.Errorf("route shows %d nexthops, want 3 per VIP:\n%s", n, route)
	}
	spreads, err := l.Spread(ctx, SpreadRequests)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spreads {
		for _, n := range nodes {
			if s.Answers[n.Name()] == 0 {
				t.Errorf("%s: no answer from %s in %d requests: %+v", s.VIP, n.Name(), SpreadRequests, s)
			}
		}
		if s.Failed > 0 {
			t.Errorf("%s: %d requests failed, the first: %v", s.VIP, s.Failed, s.FirstFail)
		}
	}

	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	wantChange(open().Fail(ctx, "n1"))
	wantFIB(l, n2, n3)
	if _, err := open().Fail(ctx, "n1"); err == nil {
		t.Error("failing a failed node succeeded")
	}
	wantChange(open().Heal(ctx, "n1"))
	wantFIB(l, n1, n2, n3)
	wantChange(open().Kill(ctx, "n2"))
	wantFIB(l, n1, n3)
	if _, err := open().Kill(ctx, "n9"); err == nil || !strings.Contains(err.Error(), "n1, n2, n3") {
		t.Errorf("kill of an unknown node: %v, want the nodes listed", err)
	}

	var status strings.Builder
	if err := open().Status(ctx, &status); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"nexthop", "via", n1.Addr4().String()},
		{"n1", n1.Addr4().String(), "Established"},                                 // the router's session
		{"n1", "healthy", "Established", "Up", "up", "2/2", "VIPs", "2/2", "VIPs"}, // n1's vipd: wanted, at the router
		{"n2", "killed", "2/2", "VIPs", "0/2", "VIPs"},                             // wanted, but not at the router
	} {
		if !hasLine(status.String(), want) {
			t.Errorf("status lacks a line of %q:\n%s", want, status.String())
		}
	}

	procs := up.world.Processes()
	if err := open().Down(); err != nil {
		t.Fatal(err)
	}
	downed = true
	for _, p := range procs {
		if err := p.Wait(10 * time.Second); errors.Is(err, testnet.ErrStillRunning) {
			t.Errorf("%s (pid %d) outlived down", p.Name(), p.PID())
		}
	}
	if left := leftovers(opts.Prefix); len(left) > 0 {
		t.Errorf("namespaces left after down: %v", left)
	}
	for _, path := range []string{up.world.Dir(), opts.record(), opts.StateDir} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after down: %v", path, err)
		}
	}
	if _, err := Open(opts); !errors.Is(err, ErrNoLab) {
		t.Errorf("Open after down: %v, want ErrNoLab", err)
	}
}

// TestUpNamespaceTaken: Up refuses a prefix whose namespace exists, names
// it, and leaves it and nothing else behind.
func TestUpNamespaceTaken(t *testing.T) {
	skipUnlessLab(t)
	opts := Options{Prefix: fmt.Sprintf("vt%d-labns", os.Getpid()), StateDir: t.TempDir(), Binary: "/bin/true"}
	taken := opts.Prefix + "-r1"
	if out, err := exec.Command("ip", "netns", "add", taken).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", taken, err, out)
	}
	defer exec.Command("ip", "netns", "delete", taken).Run()

	_, err := Up(t.Context(), opts)
	if !errors.Is(err, testnet.ErrNamespaceExists) || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "--prefix") {
		t.Fatalf("Up with %s taken: %v; want ErrNamespaceExists naming it and --prefix", taken, err)
	}
	if left := leftovers(opts.Prefix); !slices.Equal(left, []string{taken}) {
		t.Errorf("namespaces after the refused Up: %v, want only %s", left, taken)
	}
	if _, err := os.Stat(opts.record()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after the refused Up: %v", err)
	}
}

// hasLine reports whether some line of text has the fields want in order,
// other fields between them.
func hasLine(text string, want []string) bool {
	for line := range strings.Lines(text) {
		rest := want
		for _, f := range strings.Fields(line) {
			if len(rest) > 0 && f == rest[0] {
				rest = rest[1:]
			}
		}
		if len(rest) == 0 {
			return true
		}
	}
	return false
}

// TestLabMultirack: the multirack lab converges (the core over both ToRs,
// each ToR over its rack's nodes), describes itself for scripts, and a
// failing node in rack 1 is timed at its ToR while the core keeps both.
func TestLabMultirack(t *testing.T) {
	skipUnlessLab(t)
	opts := Options{Prefix: fmt.Sprintf("vt%d-mr", os.Getpid()), StateDir: t.TempDir(), Binary: buildVipd(t), Topology: TopologyMultirack}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up, err := Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", up.world.LogTails(40))
		}
		if err := up.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	l, err := Open(Options{Prefix: opts.Prefix, StateDir: opts.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	w, err := l.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.Topology != TopologyMultirack || len(w.Routers) != 5 || len(w.Nodes) != 3 || len(w.VIPs) != 2 {
		t.Fatalf("described %+v: want multirack, 5 routers, 3 nodes, 2 VIPs", w)
	}
	roles := map[string]string{}
	for _, r := range w.Routers {
		roles[r.Name] = fmt.Sprintf("%s/%d", r.Role, r.Rack)
		if !strings.HasPrefix(r.Namespace, opts.Prefix+"-") {
			t.Errorf("router %s namespace %q", r.Name, r.Namespace)
		}
	}
	if want := map[string]string{"core": "core/0", "tor1": "tor/1", "rr1": "rr/1", "tor2": "tor/2", "rr2": "rr/2"}; !maps.Equal(roles, want) {
		t.Errorf("roles %v, want %v", roles, want)
	}
	for _, n := range w.Nodes {
		if wantRack := map[string]int{"n1": 1, "n2": 1, "n3": 2}[n.Name]; n.Rack != wantRack || n.Lab != "healthy" {
			t.Errorf("node %+v: want rack %d, healthy", n, wantRack)
		}
	}
	for _, vip := range vips {
		if got := w.Routers[0].Nexthops[vip.String()]; len(got) != 2 {
			t.Errorf("core nexthops for %s: %v, want the two ToRs", vip, got)
		}
	}

	c, err := l.Fail(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil || c.Router != "tor1" {
		t.Errorf("fail n1: router %s, %v; want timed at tor1", c.Router, err)
	}
	for _, vip := range vips {
		if got, err := l.nexthops(ctx, vip); err != nil || len(got) != 2 {
			t.Errorf("core nexthops for %s after n1 failed: %v, %v; want both ToRs", vip, got, err)
		}
	}
	var status strings.Builder
	if err := l.Status(ctx, &status); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"n1", "rr1", "10.255.255.31", "Established"},
		{"n1", "failed", "0/2", "VIPs", "0/2", "VIPs"},
		{"$", "ip", "-n", opts.Prefix + "-tor2", "-4", "route", "show"},
	} {
		if !hasLine(status.String(), want) {
			t.Errorf("status lacks a line of %q:\n%s", want, status.String())
		}
	}
}
