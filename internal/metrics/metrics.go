// Package metrics exposes vipd's state to Prometheus. Every series is
// prefixed vipd_.
//
// Most series describe state the agent keeps anyway: peers, BFD sessions and
// services. A Metrics reads that state from a Source at every scrape and
// emits it as constant metrics, so a peer or service that goes away leaves no
// stale series behind; counters kept by the source (state changes, updates
// sent, transitions, failures) are exposed as counters. Only what leaves no
// trace in that state is recorded as it happens: check durations
// (ObserveCheck) and config loads and reloads (ConfigLoaded, ReloadResult).
//
// The registry is passed in, never the global one, and the package knows
// nothing of the config, BGP or health packages: the agent maps its state to
// a Snapshot.
package metrics

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source provides the state behind the snapshot-based series. The agent
// implements it.
type Source interface {
	// MetricsSnapshot returns the current state. It is called on every
	// scrape, possibly from several goroutines at once; it must be cheap
	// and must not block.
	MetricsSnapshot() Snapshot
}

// Snapshot is the state of the daemon at one scrape.
type Snapshot struct {
	Peers         []Peer
	BFD           []BFDSession
	Services      []Service
	LoadBalancers []LoadBalancer
	// XDPInterfaces are the interfaces the XDP program should run on.
	XDPInterfaces []XDPInterface
	Kubernetes    *Kubernetes // nil without a kubernetes section
	Cluster       *Cluster    // nil without a cluster section
}

// Cluster is the cluster store as this node sees it.
type Cluster struct {
	Connected     bool // etcd answers with a quorum
	Synced        bool // the cache holds a full list
	Members       int  // nodes with a live membership key
	LoadBalancers int  // load balancers in the cluster
	Serving       int  // those this node serves
	NameConflict  bool // another node runs with this node's name
}

// Kubernetes is the Kubernetes source's health.
type Kubernetes struct {
	Connected bool // the API server answers
	Synced    bool // the caches hold a full list
	Allocator bool // this node holds the allocator's Lease
	Services  int  // Services with an address this node serves
}

// Peer is one configured BGP peer.
type Peer struct {
	Name         string // label peer
	Address      string // label address
	Up           bool   // the session is Established
	StateChanges uint64 // session state changes since the peer was configured
	UpdatesSent  uint64 // UPDATE messages sent since the peer was configured
	Received     uint64 // routes from the peer in this session, all discarded
	// DiscardedUpdates counts the peer's UPDATEs the relay discarded.
	DiscardedUpdates uint64
	Announced        int // prefixes the peer's Adj-RIB-Out holds
}

// BFDSession is one BFD session.
type BFDSession struct {
	Peer         string // label peer: the BGP peer's name
	State        string // AdminDown, Down, Init or Up (case and "-", "_", " " ignored)
	AuthFailures uint64 // packets dropped for failed authentication
	IgnoredDown  uint64 // Downs ignored as spoofed (no authentication)
}

// Service is one configured service.
type Service struct {
	Name          string // label service
	Up            bool   // health checks pass (rise/fall applied)
	Drained       bool   // drained by the operator or a maintenance file
	Reason        string // label reason: a stable code; "" before the first pass
	Transitions   uint64 // up/down transitions since its monitor started
	CheckFailures uint64 // failed check rounds since its monitor started
}

// LoadBalancer is one load balancer the API created.
type LoadBalancer struct {
	Name      string // label lb
	Announced bool   // its address is announced
	Backends  []Backend
	// XDP counts what the XDP program forwarded (mode dsr; nil otherwise).
	XDP *XDPCounter
}

// Backend is one backend of a load balancer.
type Backend struct {
	Address string // label backend: "ip:port"
	Up      bool   // in the load balancer's Maglev table
	// CheckSeries is the service label of its vipd_check_duration_seconds
	// series, if it is checked.
	CheckSeries string
}

// BuildInfo labels vipd_build_info.
type BuildInfo struct {
	Version   string
	GoVersion string
	Revision  string
}

// ReadBuildInfo returns the build info of the running binary: version as
// given (it is set at link time), the Go version, and the VCS revision if
// the binary was built with VCS stamping ("unknown" otherwise).
func ReadBuildInfo(version string) BuildInfo {
	b := BuildInfo{Version: version, GoVersion: runtime.Version(), Revision: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && kv.Value != "" {
				b.Revision = kv.Value
			}
		}
	}
	return b
}

// checkBuckets bound check durations from a sub-millisecond local TCP
// connect to a slow exec near a long timeout.
var checkBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Reload results, the values of vipd_config_reloads_total's result label.
const (
	resultSuccess = "success"
	resultFailure = "failure"
)

// Metrics is vipd's Prometheus collector. Create it with New; its methods
// are safe for concurrent use.
type Metrics struct {
	src           Source
	build         prometheus.Metric
	checkDuration *prometheus.HistogramVec
	clusterWrites *prometheus.HistogramVec
	reloads       *prometheus.CounterVec
	now           func() time.Time

	mu       sync.Mutex
	observed map[string]bool // services with check-duration series
	config   configState
}

// configState is what the config series show.
type configState struct {
	loaded      bool   // a config was loaded: the series below exist
	hash        string // hash of the running config
	lastSuccess time.Time
	lastOK      bool // the last load or reload succeeded
}

// New returns a Metrics that reads src at every scrape and registers it
// with reg. A nil src yields no peer, BFD or service series.
func New(reg prometheus.Registerer, src Source, build BuildInfo) (*Metrics, error) {
	m := &Metrics{
		src:   src,
		build: constMetric(descBuildInfo, prometheus.GaugeValue, 1, build.Version, build.GoVersion, build.Revision),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipd_check_duration_seconds",
			Help:    "Duration of single health checks, by service and check kind (http, tcp, exec, listen, process).",
			Buckets: checkBuckets,
		}, []string{"service", "kind"}),
		clusterWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipd_cluster_write_duration_seconds",
			Help:    "Duration of writes to the cluster store (etcd transactions, retries included), by result (success, failure).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_config_reloads_total",
			Help: "Config reloads, by result (success, failure).",
		}, []string{"result"}),
		now:      time.Now,
		observed: make(map[string]bool),
	}
	m.reloads.WithLabelValues(resultSuccess)
	m.reloads.WithLabelValues(resultFailure)
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("metrics: register: %w", err)
	}
	return m, nil
}

// ObserveClusterWrite records how long a write to the cluster store took,
// and whether it succeeded.
func (m *Metrics) ObserveClusterWrite(took time.Duration, err error) {
	result := resultSuccess
	if err != nil {
		result = resultFailure
	}
	m.clusterWrites.WithLabelValues(result).Observe(took.Seconds())
}

// ObserveCheck records how long one check of service took. kind is the
// check's kind (http, tcp, exec, listen, process). It fits health.WithObserver:
//
//	health.WithObserver(func(kind string, took time.Duration, _ error) {
//		m.ObserveCheck(name, kind, took)
//	})
//
// A service's series are dropped at the first scrape whose snapshot no
// longer lists it.
func (m *Metrics) ObserveCheck(service, kind string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, err := m.checkDuration.GetMetricWithLabelValues(service, kind)
	if err != nil {
		return // an invalid label value: nothing sensible to record
	}
	m.observed[service] = true
	h.Observe(took.Seconds())
}

// ConfigLoaded records the config that runs at start (not a reload).
func (m *Metrics) ConfigLoaded(hash string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.config = configState{loaded: true, hash: hash, lastSuccess: m.now(), lastOK: true}
}

// ReloadResult counts a reload. After a success, hash is the new running
// config's; after a failure it is ignored and the old config's hash stays.
func (m *Metrics) ReloadResult(ok bool, hash string) {
	if ok {
		m.reloads.WithLabelValues(resultSuccess).Inc()
		m.ConfigLoaded(hash)
		return
	}
	m.reloads.WithLabelValues(resultFailure).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.config.lastOK = false
}
