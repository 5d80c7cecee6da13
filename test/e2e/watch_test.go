package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
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

// kernelWatch records every change to a namespace's kernel routes or
// addresses, as `ip -ts -o monitor OBJECT` there prints them: a line per
// change, after the time it was seen, in brackets.
type kernelWatch struct {
	h      *testnet.Host
	object string // "route" or "address"
	proc   *testnet.Process
	live   int    // length of the record when it was known to be live
	closed string // the record once the window closed
}

// watchMarker is the address the watch adds and deletes, as a blackhole
// route or an address on lo, to know how far its record has come; nothing
// else uses it (TEST-NET-1).
const watchMarker = "192.0.2.254"

// watchKernel starts recording h's kernel changes of object ("route" or
// "address") and returns once the record is live.
func watchKernel(t *testing.T, h *testnet.Host, object string) *kernelWatch {
	t.Helper()
	p, err := h.StartProcess("watch"+object, "ip", "-ts", "-o", "monitor", object)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(stopTimeout); err != nil {
			t.Errorf("stop %s: %v", p.Name(), err)
		}
	})
	w := &kernelWatch{h: h, object: object, proc: p}
	// The monitor subscribes some time after it starts: put the marker
	// back until a change of it shows.
	var log string
	err = testnet.WaitFor(t.Context(), 30*time.Second, func(ctx context.Context) error {
		_, _ = h.Exec(ctx, "ip", w.markerArgs("del")...)
		if out, err := h.Exec(ctx, "ip", w.markerArgs("add")...); err != nil {
			return fmt.Errorf("ip %v: %w\n%s", w.markerArgs("add"), err, out)
		}
		if log = p.Log(); !strings.Contains(log, w.markerText()) {
			return fmt.Errorf("no marker in the record yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s %s watch: %v\n%s", h.Name(), object, err, log)
	}
	w.live = len(log)
	return w
}

func (w *kernelWatch) markerArgs(op string) []string {
	if w.object == "route" {
		return []string{"route", op, "blackhole", watchMarker + "/32"}
	}
	return []string{"addr", op, watchMarker + "/32", "dev", "lo"}
}

// markerText is how the record shows the marker.
func (w *kernelWatch) markerText() string {
	if w.object == "route" {
		return "blackhole " + watchMarker
	}
	return "inet " + watchMarker + "/32"
}

// deletions returns every recorded deletion of prefix (a route to it, or
// the address) with the time it was seen. The first call ends the watch's
// window (see close).
func (w *kernelWatch) deletions(t *testing.T, prefix netip.Prefix) []deletion {
	t.Helper()
	if w.closed == "" {
		w.closed = w.close(t)
	}
	var out []deletion
	for line := range strings.Lines(w.closed) {
		stamp, rest, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "["), "] ")
		f := strings.Fields(rest)
		if len(f) < 2 || f[0] != "Deleted" {
			continue
		}
		match := slices.Contains(f, prefix.String()) // an address: "Deleted 3: lo inet 198.51.100.1/32 …"
		if w.object == "route" {
			match = f[1] == prefix.String() || f[1] == prefix.Addr().String()
		}
		if !match {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", stamp, time.Local)
		if err != nil {
			t.Fatalf("%s %s watch: %q: %v", w.h.Name(), w.object, line, err)
		}
		out = append(out, deletion{at: at, line: strings.TrimSpace(line)})
	}
	return out
}

// close deletes the marker and waits until the record shows that, so that
// every earlier change is in it too, and returns the record.
func (w *kernelWatch) close(t *testing.T) string {
	t.Helper()
	if out, err := w.h.Exec(t.Context(), "ip", w.markerArgs("del")...); err != nil {
		t.Fatalf("ip %v: %v\n%s", w.markerArgs("del"), err, out)
	}
	var log string
	err := testnet.WaitFor(t.Context(), 30*time.Second, func(context.Context) error {
		if log = w.proc.Log(); !deletesMarker(log[w.live:], w.markerText()) {
			return fmt.Errorf("no deletion of the marker in the record yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s %s watch: %v\n%s", w.h.Name(), w.object, err, log)
	}
	return log
}

func deletesMarker(log, marker string) bool {
	for line := range strings.Lines(log) {
		if strings.Contains(line, "Deleted ") && strings.Contains(line, marker) {
			return true
		}
	}
	return false
}

// deletion is one recorded deletion and when the monitor saw it.
type deletion struct {
	at   time.Time
	line string
}

func (d deletion) String() string { return d.line }
