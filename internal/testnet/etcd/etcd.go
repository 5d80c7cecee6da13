// Package etcd runs a real etcd cluster inside a testnet world, for tests
// of vipd's cluster mode: each member is a plain LAN host of the world, so
// vipd nodes reach it directly (http://LAN-ADDRESS:2379), and each member
// runs Debian's etcd (3.4) under `ip netns exec` through the world's
// process machinery, which records its PID and ends it at the world's
// Close if the cluster's Close did not.
//
// The test process itself has no route into the LAN: the cluster probes
// health over HTTP dialled from inside each member's namespace
// (testnet.Host.DialContext), and so can a test.
package etcd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// Binary is the etcd server the cluster runs (Debian's etcd-server).
const Binary = "/usr/bin/etcd"

// Ports every member listens on at its LAN IPv4 address; each member has
// a namespace of its own, so they never clash.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

const (
	// startTimeout bounds waiting for members to become healthy; a cold
	// three-member start takes 2-3 s, but the machine is shared.
	startTimeout = 90 * time.Second
	// reapTimeout bounds waiting for a SIGKILLed member to be gone.
	reapTimeout = 10 * time.Second
)

// Cluster is a running etcd cluster. Its methods are safe for concurrent
// use.
type Cluster struct {
	token   string // --initial-cluster-token, unique per cluster
	initial string // --initial-cluster: every member's name and peer URL

	mu      sync.Mutex
	members []*member
	closed  bool
}

// member is one etcd member: its host, data dir and current process.
type member struct {
	host    *testnet.Host
	dataDir string
	proc    *testnet.Process // the latest one started; it may have ended
}

// Start starts one etcd member on each of hosts (three for a cluster that
// survives the loss of one), with data dirs dir/NAME (NAME the host's
// name; dir is created if need be, the data dirs must not exist), and
// waits until every member reports healthy. ctx bounds the start only:
// the members run until Close, Kill or the world's Close. On error every
// member started is stopped again.
func Start(ctx context.Context, hosts []*testnet.Host, dir string) (_ *Cluster, err error) {
	if len(hosts) == 0 {
		return nil, errors.New("etcd: no hosts")
	}
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("etcd: %w (install etcd-server)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	c := &Cluster{token: "vipd-test-" + strings.ToLower(rand.Text())}
	var peers []string
	names := map[string]bool{}
	for _, h := range hosts {
		if names[h.Name()] || !h.Addr4().IsValid() {
			return nil, fmt.Errorf("etcd: host %q: want distinct LAN members", h.Name())
		}
		names[h.Name()] = true
		peers = append(peers, h.Name()+"="+peerURL(h))
		c.members = append(c.members, &member{host: h, dataDir: filepath.Join(dir, h.Name())})
	}
	c.initial = strings.Join(peers, ",")
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	for _, m := range c.members {
		// etcd refuses a data dir others may read.
		if err := os.Mkdir(m.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("etcd member %s: data dir: %w", m.host.Name(), err)
		}
		if m.proc, err = m.host.StartProcess("etcd", c.args(m, "new")...); err != nil {
			return nil, fmt.Errorf("etcd member %s: %w", m.host.Name(), err)
		}
	}
	if err := c.waitHealthy(ctx, startTimeout, c.members); err != nil {
		return nil, fmt.Errorf("etcd: start: %w", err)
	}
	return c, nil
}

// args is member m's command line; state is "new" for the first start
// and "existing" for a restart on the same data dir.
func (c *Cluster) args(m *member, state string) []string {
	return []string{
		Binary,
		"--name=" + m.host.Name(),
		"--data-dir=" + m.dataDir,
		"--listen-client-urls=" + clientURL(m.host),
		"--advertise-client-urls=" + clientURL(m.host),
		"--listen-peer-urls=" + peerURL(m.host),
		"--initial-advertise-peer-urls=" + peerURL(m.host),
		"--initial-cluster=" + c.initial,
		"--initial-cluster-token=" + c.token,
		"--initial-cluster-state=" + state,
		// Short raft timers: a lost leader is replaced in about a second.
		"--heartbeat-interval=100",
		"--election-timeout=1000",
		"--logger=zap",
		"--log-outputs=stderr",
	}
}

func clientURL(h *testnet.Host) string { return httpURL(h.Addr4(), ClientPort) }
func peerURL(h *testnet.Host) string   { return httpURL(h.Addr4(), PeerPort) }

func httpURL(a netip.Addr, port uint16) string {
	return "http://" + netip.AddrPortFrom(a, port).String()
}

// Endpoints are the members' client URLs (http://ADDRESS:2379), in the
// order of the hosts given to Start.
func (c *Cluster) Endpoints() []string {
	var urls []string
	for _, m := range c.members {
		urls = append(urls, clientURL(m.host))
	}
	return urls
}

// Hosts are the members' hosts, in the order given to Start.
func (c *Cluster) Hosts() []*testnet.Host {
	var hosts []*testnet.Host
	for _, m := range c.members {
		hosts = append(hosts, m.host)
	}
	return hosts
}

// Kill sends SIGKILL to member i's process, by the PID the world
// recorded, and waits until it is gone: a crash, with no chance to leave
// the cluster cleanly. Killing a member that is not running does nothing.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	return m.kill()
}

// kill sends SIGKILL to m's process, if it runs, and waits until it is
// gone.
func (m *member) kill() error {
	if m.proc.Exited() {
		return nil
	}
	if err := m.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("etcd member %s: kill: %w", m.host.Name(), err)
	}
	if err := m.proc.Wait(reapTimeout); errors.Is(err, testnet.ErrStillRunning) {
		return fmt.Errorf("etcd member %s: kill: %w", m.host.Name(), err)
	}
	return nil
}

// Restart starts member i again on its data dir, as a member of the
// existing cluster, and waits until it reports healthy. The member must
// not be running (Kill it first). If it does not become healthy in time,
// it is left running for the log to tell why; Kill or Close ends it.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	m, err := c.startAgain(i)
	if err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, startTimeout, []*member{m}); err != nil {
		return fmt.Errorf("etcd: restart: %w", err)
	}
	return nil
}

// startAgain starts member i's process again, if it has ended.
func (c *Cluster) startAgain(i int) (*member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return nil, err
	}
	if !m.proc.Exited() {
		return nil, fmt.Errorf("etcd member %s: restart: still running (pid %d)", m.host.Name(), m.proc.PID())
	}
	p, err := m.host.StartProcess("etcd", c.args(m, "existing")...)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: restart: %w", m.host.Name(), err)
	}
	m.proc = p
	return m, nil
}

// member returns member i; c.mu must be held.
func (c *Cluster) member(i int) (*member, error) {
	if c.closed {
		return nil, errors.New("etcd: cluster closed")
	}
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("etcd: no member %d of %d", i, len(c.members))
	}
	return c.members[i], nil
}

// Partition makes world member h (a vipd node, say) silently drop every
// packet to and from every etcd member's LAN addresses, so that its
// clients hang as in a real partition while the cluster itself stays
// whole. heal undoes it. It uses h.DropTraffic, so it replaces any other
// drop set on h, and heal clears them all; the world's Close removes it
// with h's namespace.
func (c *Cluster) Partition(ctx context.Context, h *testnet.Host) (heal func(context.Context) error, err error) {
	var peers []netip.Addr
	for _, m := range c.members {
		peers = append(peers, m.host.Addr4(), m.host.Addr6())
	}
	if err := h.DropTraffic(ctx, peers...); err != nil {
		return nil, fmt.Errorf("etcd: partition: %w", err)
	}
	return func(ctx context.Context) error {
		if err := h.DropTraffic(ctx); err != nil {
			return fmt.Errorf("etcd: heal: %w", err)
		}
		return nil
	}, nil
}

// Close kills every member and waits until they are gone. It is
// idempotent and leaves the data dirs to their owner. It does not stop
// members gracefully: their data is thrown away, and a graceful stop of
// the whole cluster makes the last leader wait seconds for a leadership
// transfer no one can take.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for _, m := range c.members {
		if m.proc != nil {
			errs = append(errs, m.kill())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("etcd: close: %w", err)
	}
	return nil
}

// LogTails returns the last lines of each member's log (one file per
// member, across restarts), for a failed test's report.
func (c *Cluster) LogTails(lines int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.members {
		if m.proc != nil {
			fmt.Fprintf(&b, "==== etcd member %s (pid %d, %s) ====\n%s\n", m.host.Name(), m.proc.PID(), m.proc.LogPath(), tail(m.proc, lines))
		}
	}
	return b.String()
}

// tail returns the last n lines of p's log.
func tail(p *testnet.Process, n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
