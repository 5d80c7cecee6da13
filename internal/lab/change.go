package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// fibPoll is how often a change's timing reads the router's FIB: the
// resolution of the times Fail, Kill and Heal print.
const fibPoll = 10 * time.Millisecond

// cutTable is the nftables table that cuts a killed node off: it drops
// every packet in and out of the node's namespace except on lo, so vipd
// keeps running and only the network fails.
const cutTable = "vipdlab"

var cutRules = strings.Join([]string{
	"add table inet " + cutTable,
	"add chain inet " + cutTable + " in { type filter hook input priority -300; policy drop; }",
	"add chain inet " + cutTable + " out { type filter hook output priority -300; policy drop; }",
	"add rule inet " + cutTable + " in iif lo accept",
	"add rule inet " + cutTable + " out oif lo accept",
}, "; ")

// Change is what a Fail, Kill or Heal did and how long the router took to
// follow, per VIP.
type Change struct {
	Node    string
	Router  string // whose FIB was timed: the node's edge router
	Did     string // what happened to the node, in words
	Restore bool   // the nexthops were to come back (Heal), not to go
	Timings []Timing
}

// Timing is how long after the action the router's kernel FIB dropped or
// restored the node's nexthop for VIP.
type Timing struct {
	VIP     netip.Addr
	After   time.Duration
	Already bool  // the FIB was so before the action: nothing to time
	Err     error // the FIB did not follow within the timeout
}

// Fail makes node's health check fail (its demo server answers 503 on
// /healthz) and times the router dropping the node's nexthops.
func (l *Lab) Fail(ctx context.Context, node string) (Change, error) {
	n, err := l.node(node)
	if err != nil {
		return Change{}, err
	}
	if exists(failFile(n)) {
		return Change{}, fmt.Errorf("%s fails its health check already: `vipd lab heal %s` restores it", node, node)
	}
	return l.change(ctx, n, false, "its health check fails: /healthz answers 503", func() error {
		return os.WriteFile(failFile(n), nil, 0o644)
	})
}

// Kill cuts node off the LAN, vipd still running, and times the router
// dropping its nexthops: BFD notices within 900 ms.
func (l *Lab) Kill(ctx context.Context, node string) (Change, error) {
	n, err := l.node(node)
	if err != nil {
		return Change{}, err
	}
	cut, err := isCut(ctx, n)
	if err != nil {
		return Change{}, err
	}
	if cut {
		return Change{}, fmt.Errorf("%s is cut off already: `vipd lab heal %s` reconnects it", node, node)
	}
	return l.change(ctx, n, false, "cut off the LAN: every packet in or out is dropped, vipd still runs", func() error {
		_, err := n.Exec(ctx, "nft", cutRules)
		return err
	})
}

// Heal restores node's health check and reconnects it, whichever of
// them Fail and Kill broke, and times the router restoring its nexthops.
func (l *Lab) Heal(ctx context.Context, node string) (Change, error) {
	n, err := l.node(node)
	if err != nil {
		return Change{}, err
	}
	cut, err := isCut(ctx, n)
	if err != nil {
		return Change{}, err
	}
	failed := exists(failFile(n))
	var did []string
	if failed {
		did = append(did, "its health check passes again")
	}
	if cut {
		did = append(did, "reconnected to the LAN")
	}
	if len(did) == 0 {
		return Change{}, fmt.Errorf("%s is neither failed nor killed: nothing to heal", node)
	}
	return l.change(ctx, n, true, strings.Join(did, " and "), func() error {
		var errs []error
		if failed {
			errs = append(errs, os.Remove(failFile(n)))
		}
		if cut {
			_, err := n.Exec(ctx, "nft", "delete table inet "+cutTable)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// isCut reports whether Kill has cut node n off.
func isCut(ctx context.Context, n *testnet.Node) (bool, error) {
	out, err := n.Exec(ctx, "nft", "list", "tables", "inet")
	if err != nil {
		return false, err
	}
	return strings.Contains(out, "table inet "+cutTable+"\n"), nil
}

// change runs act on node n and times the router's FIB until n's nexthop
// for each VIP is there (restore) or gone.
func (l *Lab) change(ctx context.Context, n *testnet.Node, restore bool, did string, act func() error) (Change, error) {
	c := Change{Node: n.Name(), Router: l.edgeRouter(n).Name(), Did: did, Restore: restore, Timings: make([]Timing, len(vips))}
	before := make([]bool, len(vips))
	for i, vip := range vips {
		has, err := l.hasNexthop(ctx, n, vip)
		if err != nil {
			return Change{}, err
		}
		before[i] = has
	}
	start := time.Now()
	if err := act(); err != nil {
		return Change{}, fmt.Errorf("%s: %w", n.Name(), err)
	}
	var wg sync.WaitGroup
	for i, vip := range vips {
		c.Timings[i].VIP = vip
		if before[i] == restore {
			c.Timings[i].Already = true
			continue
		}
		wg.Go(func() {
			c.Timings[i].After, c.Timings[i].Err = l.watch(ctx, n, vip, restore, start)
		})
	}
	wg.Wait()
	return c, nil
}

// watch polls the router's FIB until it routes vip via node n (want) or
// no longer does, and returns the time since start.
func (l *Lab) watch(ctx context.Context, n *testnet.Node, vip netip.Addr, want bool, start time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, changeTimeout)
	defer cancel()
	ticker := time.NewTicker(fibPoll)
	defer ticker.Stop()
	for {
		has, err := l.hasNexthop(ctx, n, vip)
		if err == nil && has == want {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("still there after %v", changeTimeout)
				if want {
					err = fmt.Errorf("still missing after %v", changeTimeout)
				}
			}
			return 0, err
		case <-ticker.C:
		}
	}
}

// Write prints the change and its timings.
func (c Change) Write(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", c.Node, c.Did)
	verb, missing := "dropped", "was not in the FIB"
	if c.Restore {
		verb, missing = "restored", "was in the FIB already"
	}
	for _, t := range c.Timings {
		switch {
		case t.Err != nil:
			fmt.Fprintf(w, "  %-16s router %s has not %s %s's nexthop: %v\n", t.VIP, c.router(), verb, c.Node, t.Err)
		case t.Already:
			fmt.Fprintf(w, "  %-16s %s's nexthop %s\n", t.VIP, c.Node, missing)
		default:
			fmt.Fprintf(w, "  %-16s router %s %s %s's nexthop after %v\n", t.VIP, c.router(), verb, c.Node, t.After.Round(time.Millisecond))
		}
	}
}

// Err is the first timing's error: the router did not follow.
func (c Change) Err() error {
	for _, t := range c.Timings {
		if t.Err != nil {
			return fmt.Errorf("%s: router %s FIB for %s: %w", c.Node, c.router(), t.VIP, t.Err)
		}
	}
	return nil
}

// router names the router whose FIB was timed.
func (c Change) router() string {
	if c.Router == "" {
		return routerName
	}
	return c.Router
}
