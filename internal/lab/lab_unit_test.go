package lab

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/testnet"
)

// asUID runs the test as if the process had the effective uid id.
func asUID(t *testing.T, id int) {
	t.Helper()
	saved := euid
	euid = func() int { return id }
	t.Cleanup(func() { euid = saved })
}

// TestNodeConfig: the config every node runs is valid and asks for what
// the lab shows: BFD at 300 ms × 3 with the router, both VIPs, and an
// http check against the demo server.
func TestNodeConfig(t *testing.T) {
	c, err := config.Parse([]byte(nodeConfig() + "state_dir: /tmp/x\napi:\n  socket: /tmp/x/vipd.sock\nmetrics:\n  listen: \"\"\n"))
	if err != nil {
		t.Fatalf("%v\n%s", err, nodeConfig())
	}
	if len(c.BGP.Peers) != 1 {
		t.Fatalf("%d peers, want 1", len(c.BGP.Peers))
	}
	p := c.BGP.Peers[0]
	if p.Address != routerAddr || p.ASN != routerASN || p.Multihop {
		t.Errorf("peer %+v, want single-hop %s AS %d", p, routerAddr, routerASN)
	}
	if want := (config.BFD{Enabled: true, MinTx: 300 * time.Millisecond, MinRx: 300 * time.Millisecond, Multiplier: 3}); p.BFD.Enabled != want.Enabled ||
		p.BFD.MinTx != want.MinTx || p.BFD.MinRx != want.MinRx || p.BFD.Multiplier != want.Multiplier || p.BFD.Multihop {
		t.Errorf("peer BFD %+v, want single-hop 300ms x 3", p.BFD)
	}
	if len(c.Services) != 1 || len(c.Services[0].Checks) != 1 || c.Services[0].Checks[0].HTTP == nil {
		t.Fatalf("services %+v, want one with one http check", c.Services)
	}
	s := c.Services[0]
	if diff := cmp.Diff([]string{VIP4.String(), VIP6.String()}, []string{s.VIPs[0].String(), s.VIPs[1].String()}); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
	if got := s.Checks[0].HTTP.URL; got != "http://127.0.0.1:80/healthz" {
		t.Errorf("check URL %s", got)
	}
}

// TestSpec: the lab's world is one the testnet accepts, with BFD towards
// every node, and its namespaces carry the prefix.
func TestSpec(t *testing.T) {
	s := spec("vlab", "/run/vipd-lab/vlab.json")
	if len(s.Nodes) != 3 || len(s.Routers) != 1 || s.Client == nil {
		t.Fatalf("spec %+v: want one router, three nodes and a client", s)
	}
	for _, n := range s.Routers[0].Neighbors {
		if n.BFD == nil || n.Multihop {
			t.Errorf("neighbor %+v: want single-hop with BFD", n)
		}
	}
}

// TestTopologies: each topology's world is one the testnet accepts, every
// node's config parses and names the node's peer router, and each node
// is watched at its edge router.
func TestTopologies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		peer, edge map[string]string
		asn        map[string]uint32
	}{
		{TopologySingle, map[string]string{"n1": "r1", "n3": "r1"}, map[string]string{"n1": "r1", "n3": "r1"}, map[string]uint32{"n1": nodeASN}},
		{TopologyMultirack, map[string]string{"n1": "rr1", "n2": "rr1", "n3": "rr2"}, map[string]string{"n1": "tor1", "n3": "tor2"},
			map[string]uint32{"n1": rack1ASN, "n3": rack2ASN}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo, err := newTopology(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.spec.Nodes) != 3 || topo.spec.Client == nil {
				t.Fatalf("spec %+v: want three nodes and a client", topo.spec)
			}
			for node, want := range tc.peer {
				if got := topo.peer(node); got != want {
					t.Errorf("peer of %s: %s, want %s", node, got, want)
				}
				c, err := config.Parse([]byte(topo.config(node) + "state_dir: /tmp/x\napi:\n  socket: /tmp/x/vipd.sock\nmetrics:\n  listen: \"\"\n"))
				if err != nil {
					t.Fatalf("%s config: %v", node, err)
				}
				if p := c.BGP.Peers[0]; p.Name != want || !p.BFD.Enabled {
					t.Errorf("%s's peer %+v, want %s with BFD", node, p, want)
				}
				if wantASN, ok := tc.asn[node]; ok && c.BGP.ASN != wantASN {
					t.Errorf("%s's asn %d, want %d", node, c.BGP.ASN, wantASN)
				}
			}
			for node, want := range tc.edge {
				if got := topo.edge(node); got != want {
					t.Errorf("edge of %s: %s, want %s", node, got, want)
				}
			}
		})
	}
	if _, err := newTopology("mesh"); err == nil || !strings.Contains(err.Error(), "multirack") {
		t.Errorf("unknown topology: %v, want an error naming the known ones", err)
	}
}

func TestNotRoot(t *testing.T) {
	asUID(t, 1000)
	dir := t.TempDir()
	opts := Options{Prefix: "vtnotroot", StateDir: dir, Binary: "/bin/true"}
	if _, err := Up(t.Context(), opts); !errors.Is(err, ErrNotRoot) {
		t.Errorf("Up: %v, want ErrNotRoot", err)
	}
	if _, err := Open(opts); !errors.Is(err, ErrNotRoot) {
		t.Errorf("Open: %v, want ErrNotRoot", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("Up without root left files: %v", entries)
	}
}

// TestUpTwice: a lab whose record exists is up already; Up says so and
// leaves the record alone.
func TestUpTwice(t *testing.T) {
	asUID(t, 0)
	opts := Options{Prefix: "vtupt", StateDir: t.TempDir(), Binary: "/bin/true"}
	if err := os.WriteFile(opts.record(), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Up(t.Context(), opts)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "vipd lab down") {
		t.Errorf("Up over an existing record: %v, want ErrExists pointing at `vipd lab down`", err)
	}
	if b, err := os.ReadFile(opts.record()); err != nil || string(b) != "{}" {
		t.Errorf("record after the refused Up: %q, %v", b, err)
	}
}

func TestOpenErrors(t *testing.T) {
	asUID(t, 0)
	opts := Options{Prefix: "vtopen", StateDir: t.TempDir()}
	if _, err := Open(opts); !errors.Is(err, ErrNoLab) {
		t.Errorf("Open without a record: %v, want ErrNoLab", err)
	}
	if err := os.WriteFile(opts.record(), []byte(`{"version": 1, "spec": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(opts)
	if !errors.Is(err, testnet.ErrBadRecord) || !strings.Contains(err.Error(), "remove "+opts.record()) {
		t.Errorf("Open of a damaged record: %v, want ErrBadRecord saying to remove it", err)
	}
}

func TestProgress(t *testing.T) {
	var tty, plain bytes.Buffer
	pt, pp := newProgress(&tty, true), newProgress(&plain, false)
	for _, msg := range []string{"a", "a", "b"} {
		pt.update(msg)
		pp.update(msg)
	}
	pt.end()
	pp.end()
	if want := "a\nb\n"; plain.String() != want {
		t.Errorf("plain progress %q, want %q", plain.String(), want)
	}
	if got := tty.String(); strings.Count(got, "\r\033[K") != 3 || !strings.HasPrefix(got, "\r\033[Ka (0s)") || !strings.HasSuffix(got, "b (0s)\n") {
		t.Errorf("terminal progress %q: want three redraws of one line, then a newline", got)
	}
	newProgress(nil, true).update("nothing") // no writer: no output, no panic
}

func TestWriteSpread(t *testing.T) {
	var b bytes.Buffer
	WriteSpread(&b, []Spread{
		{VIP: VIP4, Answers: map[string]int{"n1": 40, "n2": 30, "n3": 30}},
		{VIP: VIP6, Answers: map[string]int{"n1": 50, "n3": 48, "odd": 1}, Failed: 1, FirstFail: errors.New("timeout")},
	}, 100)
	want := `100 HTTP requests from client to each VIP, each on a new connection:
NODE  203.0.113.10  2001:db8:10::10
n1    40            50
n2    30            0
n3    30            48
odd   0             1
1 requests to 2001:db8:10::10 failed, the first: timeout
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestChangeWrite(t *testing.T) {
	var b bytes.Buffer
	c := Change{Node: "n1", Did: "its health check fails", Timings: []Timing{
		{VIP: VIP4, After: 1012345 * time.Microsecond},
		{VIP: VIP6, Already: true},
	}}
	c.Write(&b)
	want := "n1: its health check fails\n" +
		"  203.0.113.10     router r1 dropped n1's nexthop after 1.012s\n" +
		"  2001:db8:10::10  n1's nexthop was not in the FIB\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v", c.Err())
	}
	c.Timings[0].Err = errors.New("still there")
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "203.0.113.10") {
		t.Errorf("Err() = %v, want the failed VIP named", err)
	}
}
