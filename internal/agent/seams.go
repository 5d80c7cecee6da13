package agent

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/dataplane"
	"github.com/vipd/vipd/internal/dataplane/xdp"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/vip"
)

// The agent's seams: what it reads desired state from (Source) and what it
// changes (Speaker, Binder, DataPlane, BFD). Run uses the real ones; the
// unit tests put fakes in their place and check the order of changes.

// Snapshot is one source's part of the desired state.
type Snapshot struct {
	Services      []config.Service
	LoadBalancers []lb.LoadBalancer
	// Verdicts decide, by service name, whether a service whose health
	// vipd does not check itself is announced: Kubernetes decides from
	// endpoints and nodes. Such a service has no checks.
	Verdicts map[string]Verdict
	// Refused are addresses a source asked for that no node may serve:
	// status shows why; nothing binds or announces them.
	Refused []Refusal
	// Drained names services drained where the source keeps them (the
	// cluster store: on every node), besides the operator's drains here.
	Drained []string
}

// Verdict is a source's own decision on one of its services.
type Verdict struct {
	Up     bool
	Reason Reason // a stable code, as the source defines it
	Detail string // says why, for people
}

// Refusal is an address a source's service may not have.
type Refusal struct {
	Service string
	Addr    netip.Addr
	Reason  Reason
	Detail  string
}

// AnnounceObserver is a Source that wants to hear when this node starts
// or stops announcing one of its services (Kubernetes records Events).
// Announced runs on the loop: it must not block.
type AnnounceObserver interface {
	Announced(service string, announced bool, why string)
}

// Source delivers desired state: the config file's services, the stored
// load balancers, and later Kubernetes and the cluster store. A source
// never touches the kernel or BGP. It calls the agent's Wake when its
// snapshot changes; Snapshot may be called from the loop at any time.
type Source interface {
	Snapshot() Snapshot
}

// SourceFunc adapts a function to Source.
type SourceFunc func() Snapshot

// Snapshot implements Source.
func (f SourceFunc) Snapshot() Snapshot { return f() }

// Speaker is the BGP speaker as the agent uses it.
type Speaker interface {
	SetPeers(ctx context.Context, peers []config.Peer) error
	// SetRoutes makes the announced routes match routes; it returns once
	// the withdrawals among them were sent.
	SetRoutes(ctx context.Context, routes []bgp.Route) error
	// Announced reports whether prefix is announced (not withdrawn).
	Announced(prefix netip.Prefix) bool
	ResetPeer(ctx context.Context, addr netip.Addr, reason string) error
	Status() bgp.Status
	// Stop withdraws every route and closes the sessions with a Cease
	// (under graceful restart it leaves the routes), then ends the speaker.
	Stop() error
}

// Binder puts VIPs on interfaces. *vip.Binder satisfies it.
type Binder interface {
	Set(ctx context.Context, desired []vip.Address) error
	Bound() []vip.Address
	// ForeignAddrs are the host's addresses vipd did not add, by
	// interface name: a pool never hands them out.
	ForeignAddrs() (map[netip.Addr]string, error)
}

// DataPlane programs load balancers and port filters.
type DataPlane interface {
	Set(ctx context.Context, s dataplane.State) error
	// Delete removes everything the data plane programmed.
	Delete(ctx context.Context) error
	// HostSettings sets the kernel parameters nat-mode load balancing
	// needs and returns them.
	HostSettings() ([]dataplane.Setting, error)
}

// BFD runs the BFD sessions.
type BFD interface {
	Set(ctx context.Context, peers []bfd.Peer) error
	Status() []bfd.SessionStatus
	// Stop ends every session (AdminDown) and the BFD goroutines.
	Stop() error
}

// actuators make the real seams. Tests replace them.
type actuators struct {
	// startSpeaker runs a speaker for cfg; restarting says this start
	// follows a graceful-restart stop (bgp.Global.Restarting).
	startSpeaker func(cfg *config.Config, routerID netip.Addr, restarting bool, log *slog.Logger) (Speaker, error)
	// startBFD runs BFD for peers; onEvent runs on BFD's own goroutine.
	startBFD     func(peers []bfd.Peer, log *slog.Logger, onEvent func(context.Context, bfd.Event)) (BFD, error)
	newBinder    func(st *store.Store, log *slog.Logger) Binder
	newDataPlane func(log *slog.Logger) (DataPlane, error)
	// newXDP loads the XDP data plane; resolve finds backends' MACs.
	newXDP  func(log *slog.Logger) (XDPPlane, error)
	resolve resolveFunc
}

func realActuators() actuators {
	return actuators{
		startSpeaker: startSpeaker,
		startBFD:     startBFD,
		newBinder:    func(st *store.Store, log *slog.Logger) Binder { return vip.New(st, log) },
		newDataPlane: newNFTables,
		newXDP:       newXDPPlane,
		resolve:      xdp.Resolve,
	}
}
