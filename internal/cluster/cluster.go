// Package cluster is the cluster store: load balancers, their backends,
// address allocations and drains kept in etcd, where every node's API can
// change them and every node watches them.
//
// A Store is one node's view of it. It keeps a cache of the whole prefix,
// filled by a list and kept current by a watch, so the agent reads it
// without a round trip and keeps serving the last state it knew while etcd
// is out of reach: a node never withdraws everything because the store
// went away. Writes go to etcd first, each one a transaction whose
// comparisons make it safe against every other node's: an address is
// handed out only if its key does not exist yet, a change applies only to
// the record it read. The writer then waits until its own watch has seen
// the write, so a reply reflects this node's state.
//
// Each node also keeps a membership key, bound to an etcd lease, saying
// who it is and what it announces; it disappears when the node stops or
// stays out of contact longer than the lease.
//
// # Keys
//
//	PREFIX/lb/UUID          a load balancer's record (as in the state file)
//	PREFIX/name/NAME        UUID: a name is held once
//	PREFIX/address/ADDR     UUID: an address is handed out once
//	PREFIX/drain/NAME       a drained load balancer (every node withdraws it)
//	PREFIX/node/NODE        a member, while its lease lives
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// ErrUnavailable is wrapped by every write refused because etcd is out of
// reach or has no quorum: the API answers 503.
var ErrUnavailable = errors.New("cluster store unavailable")

const (
	// requestTimeout bounds each request to etcd. A write that takes
	// longer is refused as unavailable; whether it landed, the watch will
	// tell.
	requestTimeout = 5 * time.Second
	// probeInterval is how often the node checks that etcd answers with
	// a quorum behind it; probeTimeout bounds one check.
	probeInterval = time.Second
	probeTimeout  = 2 * time.Second
	// maxAttempts bounds the retries of a transaction that lost a race.
	maxAttempts = 50
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// Options configure a Store.
type Options struct {
	Config  config.Cluster
	Node    string // this node's name (Config.NodeName, defaulted)
	Version string
	Pools   []config.Pool
	// HostAddrs are this host's own addresses: a create on this node
	// never hands one out.
	HostAddrs lb.HostAddrs
	Log       *slog.Logger
	// OnChange is called, without blocking, when the load balancers or
	// drains change.
	OnChange func()
	// Cache, if set, keeps a copy of the load balancers and drains that
	// a restart serves until etcd answers.
	Cache Cache
	// Dial, if set, opens the connections to etcd: tests dial from
	// inside a network namespace.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Store is this node's view of the cluster store.
type Store struct {
	opts   Options
	keys   keys
	client *clientv3.Client
	log    *slog.Logger
	// reported wakes the membership writer when this node's report
	// changes; dirty wakes the cache's writer.
	reported chan struct{}
	dirty    chan struct{}

	mu         sync.Mutex
	pools      []config.Pool
	lbs        map[string]lb.LoadBalancer // by UUID
	drains     map[string]bool            // by load balancer name
	members    map[string]Member          // by node name
	rev        int64                      // the etcd revision the cache reflects
	revChanged chan struct{}              // closed when rev grows
	synced     bool
	connected  bool
	since      time.Time // of the last change of connected
	lastErr    string
	report     Report
	// lease holds this node's membership key while it is written (0
	// otherwise); keyLost says the key was overwritten or deleted since.
	lease      clientv3.LeaseID
	keyLost    bool
	pastLeases []clientv3.LeaseID // this node's latest leases, lease last
	// conflict is when another node last wrote this node's key, and
	// conflictStarted when that node started (members.go ownKey).
	conflict, conflictStarted time.Time
}

// New returns a store for opts, serving the local copy of the cluster
// store if opts.Cache has one. It does not contact etcd: Run does, and
// keeps trying.
func New(opts Options) (*Store, error) {
	e := opts.Config.Etcd
	cfg := clientv3.Config{
		Endpoints:            e.Endpoints,
		DialTimeout:          requestTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		PermitWithoutStream:  true,
		Username:             e.Username,
		Password:             e.Password.Reveal(),
		// vipd logs what matters itself (contact lost and regained),
		// through slog.
		Logger: zap.NewNop(),
	}
	if opts.Dial != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(opts.Dial)}
	}
	if needsTLS(e) {
		t, err := tlsConfig(e)
		if err != nil {
			return nil, err
		}
		cfg.TLS = t
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster.etcd: %w", err)
	}
	s := &Store{
		opts: opts, keys: keys(e.Prefix), client: client, log: opts.Log.With("component", "cluster"),
		reported: make(chan struct{}, 1), dirty: make(chan struct{}, 1), pools: opts.Pools,
		lbs: map[string]lb.LoadBalancer{}, drains: map[string]bool{}, members: map[string]Member{},
		revChanged: make(chan struct{}), since: time.Now(), lastErr: "not contacted yet",
	}
	// Before the agent's first pass: a restart keeps serving what the
	// last run knew, whether or not etcd answers.
	s.restore()
	return s, nil
}

func needsTLS(e config.Etcd) bool {
	return e.CAFile != "" || e.CertFile != "" || slices.ContainsFunc(e.Endpoints, func(u string) bool { return strings.HasPrefix(u, "https://") })
}

func tlsConfig(e config.Etcd) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.etcd.ca_file: %s holds no PEM certificate", e.CAFile)
		}
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.cert_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Run follows the store, checks contact and keeps this node's membership
// until ctx ends; then it removes the membership and closes the client.
func (s *Store) Run(ctx context.Context) error {
	defer s.client.Close()
	var wg sync.WaitGroup
	wg.Go(func() { s.probe(ctx) })
	wg.Go(func() { s.membership(ctx) })
	wg.Go(func() { s.saveCache(ctx) })
	s.follow(ctx)
	wg.Wait()
	return nil
}

// SetPools replaces the pools creates on this node allocate from (a
// reload).
func (s *Store) SetPools(pools []config.Pool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pools = slices.Clone(pools)
}

// Node is this node's name in the cluster.
func (s *Store) Node() string { return s.opts.Node }

// LoadBalancers returns every load balancer of the cluster, sorted by
// name.
func (s *Store) LoadBalancers() []lb.LoadBalancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sorted()
}

func (s *Store) sorted() []lb.LoadBalancer {
	out := make([]lb.LoadBalancer, 0, len(s.lbs))
	for _, l := range s.lbs {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lb.LoadBalancer) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	return out
}

// Serving returns the load balancers this node serves: those whose nodes
// selector picks it.
func (s *Store) Serving() []lb.LoadBalancer {
	return slices.DeleteFunc(s.LoadBalancers(), func(l lb.LoadBalancer) bool { return !s.Selects(l) })
}

// Selects reports whether this node serves l.
func (s *Store) Selects(l lb.LoadBalancer) bool {
	return l.Spec.Selects(s.opts.Node, s.opts.Config.Labels)
}

// Get returns the load balancer with the UUID from the cache, or an error
// wrapping lb.ErrNotFound.
func (s *Store) Get(id string) (lb.LoadBalancer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lbs[id]
	if !ok {
		return lb.LoadBalancer{}, fmt.Errorf("load balancer %q: %w", id, lb.ErrNotFound)
	}
	return l, nil
}

// Drained returns the names of the drained load balancers.
func (s *Store) Drained() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.drains))
	for n := range s.drains {
		out[n] = true
	}
	return out
}

// WaitRevision returns once the cache reflects etcd revision rev, so a
// write's reply can reflect this node's state.
func (s *Store) WaitRevision(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		have, changed := s.rev, s.revChanged
		s.mu.Unlock()
		if have >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for the watch to reach revision %d (at %d): %w", rev, have, ctx.Err())
		case <-changed:
		}
	}
}

// changed tells the agent, and the cache's writer, that the load
// balancers or drains changed.
func (s *Store) changed() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// sleep waits d or until ctx ends, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
