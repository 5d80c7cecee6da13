package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// birdSession returns the `show protocols all` block of BIRD router r's
// BGP session with node.
func birdSession(ctx context.Context, r *testnet.Router, node *testnet.Node) (string, error) {
	out, err := r.Birdc(ctx, "show", "protocols", "all")
	if err != nil {
		return "", err
	}
	// A block per protocol: a first line at column 0, then indented lines.
	var blocks []string
	for line := range strings.Lines(out) {
		if line != "" && line[0] != ' ' || len(blocks) == 0 {
			blocks = append(blocks, "")
		}
		blocks[len(blocks)-1] += line
	}
	want := "Neighbor address: " + node.Addr4().String() + "\n"
	for _, b := range blocks {
		for line := range strings.Lines(b) {
			if strings.TrimSpace(line)+"\n" == want {
				return b, nil
			}
		}
	}
	return "", fmt.Errorf("router %s: no BGP session with %s in show protocols all:\n%s", r.Name(), node.Name(), out)
}

// importStats are the route changes a BIRD router received on one BGP
// session, summed over its channels: `Route change stats`, counters that
// keep every change, even one undone later.
type importStats struct{ updates, withdraws int }

func (s importStats) String() string {
	return fmt.Sprintf("%d updates, %d withdrawals", s.updates, s.withdraws)
}

// birdImports reads the importStats of router r's session with node.
func birdImports(t *testing.T, r *testnet.Router, node *testnet.Node) importStats {
	t.Helper()
	block, err := birdSession(t.Context(), r, node)
	if err != nil {
		t.Fatal(err)
	}
	var s importStats
	for line := range strings.Lines(block) {
		// "Import updates:   received rejected filtered ignored accepted"
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "Import" {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("router %s: %q: %v", r.Name(), line, err)
		}
		switch f[1] {
		case "updates:":
			s.updates += n
		case "withdraws:":
			s.withdraws += n
		}
	}
	return s
}

// routeWatch records every change to a router's kernel routes, as
// `ip -ts -o monitor route` in its namespace prints them: a line per
// change, after a timestamp in brackets.
type routeWatch struct {
	r    *testnet.Router
	proc *testnet.Process
	live int // length of the record when it was known to be live
}

// routeMarker is a blackhole route the watch adds and deletes in the
// router's namespace to know how far its record has come; nothing else
// uses the address (TEST-NET-1).
const routeMarker = "192.0.2.254/32"

// watchRoutes starts recording router r's kernel route changes and returns
// once the record is live.
func watchRoutes(t *testing.T, r *testnet.Router) *routeWatch {
	t.Helper()
	p, err := r.StartProcess("ipmonitor", "ip", "-ts", "-o", "monitor", "route")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(stopTimeout); err != nil {
			t.Errorf("stop %s: %v", p.Name(), err)
		}
	})
	w := &routeWatch{r: r, proc: p}
	// The monitor subscribes some time after it starts: put the marker
	// back until a change of it shows.
	var log string
	err = testnet.WaitFor(t.Context(), 30*time.Second, func(ctx context.Context) error {
		_, _ = r.Exec(ctx, "ip", "route", "del", "blackhole", routeMarker)
		if out, err := r.Exec(ctx, "ip", "route", "add", "blackhole", routeMarker); err != nil {
			return fmt.Errorf("ip route add blackhole %s: %w\n%s", routeMarker, err, out)
		}
		if log = p.Log(); !strings.Contains(log, "blackhole "+markerAddr()) {
			return fmt.Errorf("no marker in the record yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("router %s route watch: %v\n%s", r.Name(), err, log)
	}
	w.live = len(log)
	return w
}

func markerAddr() string { return strings.TrimSuffix(routeMarker, "/32") }

// deletions ends the watch's window: it deletes the marker, waits until
// the record shows that, so that every earlier change is in it too, and
// returns every recorded deletion of a route to prefix.
func (w *routeWatch) deletions(t *testing.T, prefix netip.Prefix) []string {
	t.Helper()
	if out, err := w.r.Exec(t.Context(), "ip", "route", "del", "blackhole", routeMarker); err != nil {
		t.Fatalf("ip route del blackhole %s: %v\n%s", routeMarker, err, out)
	}
	want := "Deleted blackhole " + markerAddr()
	var log string
	err := testnet.WaitFor(t.Context(), 30*time.Second, func(context.Context) error {
		if log = w.proc.Log(); !strings.Contains(log[w.live:], want) {
			return fmt.Errorf("no %q in the record yet", want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("router %s route watch: %v\n%s", w.r.Name(), err, log)
	}
	var out []string
	for line := range strings.Lines(log) {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == "Deleted" && (f[1] == prefix.String() || f[1] == prefix.Addr().String()) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}
