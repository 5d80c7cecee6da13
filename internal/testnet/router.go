package testnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// daemonStopGrace is how long a router daemon gets to exit after SIGTERM.
const daemonStopGrace = 10 * time.Second

// Router is a router namespace running BIRD or FRR. Both kinds share this
// API; the kind only changes how the daemon is run and queried.
type Router struct {
	Host
	spec   RouterSpec
	daemon routerDaemon
}

// routerDaemon is one kind of routing daemon in a router's namespace.
type routerDaemon interface {
	prepare() error         // write configs: once, before the first start
	adopt(procs []*Process) // take over a loaded world's running daemon
	start(ctx context.Context) error
	stop(grace time.Duration) error
	routes(ctx context.Context, prefix netip.Prefix) ([]RouteInfo, error)
	sessions(ctx context.Context) ([]Session, error)
	bfdSessions(ctx context.Context) ([]BFDSession, error)
	logs() string
}

// addRouter creates a router's namespace; Start runs its daemon.
func (w *World) addRouter(ctx context.Context, spec RouterSpec) (*Router, error) {
	h, err := w.addMember(ctx, NodeSpec{Name: spec.Name, Address: spec.Address})
	if err != nil {
		return nil, err
	}
	err = sysctl(ctx, h.ns,
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
		// Spread flows by L4 ports; Linux hashes on addresses by default.
		"net.ipv4.fib_multipath_hash_policy=1",
		"net.ipv6.fib_multipath_hash_policy=1",
		// The client and nodes share the LAN: keep traffic through the router.
		"net.ipv4.conf.all.send_redirects=0",
		"net.ipv4.conf."+LANInterface+".send_redirects=0",
	)
	if err != nil {
		return nil, err
	}
	if err := multipathSeed(ctx, h.ns, spec.Address); err != nil {
		return nil, err
	}
	if spec.PeerAddress.IsValid() {
		bits := spec.PeerAddress.BitLen()
		if err := ipBatch(ctx, h.ns, []string{fmt.Sprintf("addr add %s/%d dev lo", spec.PeerAddress, bits)}); err != nil {
			return nil, err
		}
	}
	r, err := newRouter(h, spec)
	if err != nil {
		return nil, err
	}
	return r, r.daemon.prepare()
}

// multipathSeedPath is the sysctl (Linux 6.11+) that seeds the multipath
// hash of a namespace.
const multipathSeedPath = "/proc/sys/net/ipv4/fib_multipath_hash_seed"

// multipathSeed makes the router hash each flow its own way: its own seed,
// from its address, over the same five-tuple as policy 1 but through policy
// 3 (custom fields, 0x37: addresses, protocol, ports). Policy 1 reuses the
// hash a packet already carries, which the client's socket set and veths
// keep, so every router would pick alike and a ToR behind a core would send
// all it gets to one node (ECMP polarisation); policy 3 hashes afresh with
// the namespace's seed. Older kernels lack the sysctls and keep policy 1.
func multipathSeed(ctx context.Context, ns string, addr netip.Addr) error {
	if _, err := os.Stat(multipathSeedPath); err != nil {
		return nil
	}
	a := addr.As4()
	seed := binary.BigEndian.Uint32(a[:]) | 1 // 0 would mean the shared seed
	return sysctl(ctx, ns,
		fmt.Sprintf("net.ipv4.fib_multipath_hash_seed=%d", seed),
		"net.ipv4.fib_multipath_hash_fields=0x0037",
		"net.ipv4.fib_multipath_hash_policy=3",
		"net.ipv6.fib_multipath_hash_fields=0x0037",
		"net.ipv6.fib_multipath_hash_policy=3",
	)
}

// newRouter describes the router spec in member h, without side effects.
func newRouter(h *Host, spec RouterSpec) (*Router, error) {
	r := &Router{Host: *h, spec: spec}
	var err error
	switch spec.Kind {
	case BIRD:
		r.daemon, err = newBirdRouter(&r.Host, spec)
	case FRR:
		r.daemon, err = newFRRRouter(&r.Host, spec)
	default:
		err = fmt.Errorf("unknown kind %q", spec.Kind)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Spec is the router's spec.
func (r *Router) Spec() RouterSpec { return r.spec }

// Kind is the router's daemon kind.
func (r *Router) Kind() RouterKind { return r.spec.Kind }

// ASN is the router's AS number.
func (r *Router) ASN() uint32 { return r.spec.ASN }

// PeerAddress is the address nodes peer with: the spec's PeerAddress if
// set, else the router's LAN IPv4 address.
func (r *Router) PeerAddress() netip.Addr {
	if r.spec.PeerAddress.IsValid() {
		return r.spec.PeerAddress
	}
	return r.addr4
}

// Start runs the router's daemon and waits until it answers queries.
func (r *Router) Start(ctx context.Context) error {
	if err := r.daemon.start(ctx); err != nil {
		return fmt.Errorf("router %s: start: %w", r.name, err)
	}
	return nil
}

// Stop ends the router's daemon (SIGTERM, SIGKILL after 10 s). Its routes
// leave the kernel FIB and its sessions close.
func (r *Router) Stop() error {
	if err := r.daemon.stop(daemonStopGrace); err != nil {
		return fmt.Errorf("router %s: stop: %w", r.name, err)
	}
	return nil
}

// Restart stops and starts the router's daemon.
func (r *Router) Restart(ctx context.Context) error {
	return errors.Join(r.Stop(), r.Start(ctx))
}

// Log returns the daemon's output since the world was built.
func (r *Router) Log() string { return r.daemon.logs() }

// Birdc runs a birdc command against a BIRD router, for what the other
// methods do not ask (route counts, say), and returns its output.
func (r *Router) Birdc(ctx context.Context, args ...string) (string, error) {
	d, ok := r.daemon.(*birdDaemon)
	if !ok {
		return "", fmt.Errorf("router %s: birdc: not a BIRD router", r.name)
	}
	out, err := d.birdc(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("router %s: %w", r.name, err)
	}
	return out, nil
}

// BGPRoutes returns the BGP paths the router holds for exactly prefix.
func (r *Router) BGPRoutes(ctx context.Context, prefix netip.Prefix) ([]RouteInfo, error) {
	routes, err := r.daemon.routes(ctx, prefix.Masked())
	if err != nil {
		return nil, fmt.Errorf("router %s: routes for %s: %w", r.name, prefix, err)
	}
	return routes, nil
}

// Sessions returns the state of every configured neighbour's session.
func (r *Router) Sessions(ctx context.Context) ([]Session, error) {
	sessions, err := r.daemon.sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("router %s: sessions: %w", r.name, err)
	}
	return sessions, nil
}

// WaitEstablished waits up to timeout until the sessions with neighbors
// (all configured neighbours if none are given) are Established.
func (r *Router) WaitEstablished(ctx context.Context, timeout time.Duration, neighbors ...netip.Addr) error {
	if len(neighbors) == 0 {
		for _, n := range r.spec.Neighbors {
			neighbors = append(neighbors, n.Address)
		}
	}
	err := WaitFor(ctx, timeout, func(ctx context.Context) error {
		sessions, err := r.Sessions(ctx)
		if err != nil {
			return err
		}
		var down []string
		for _, n := range neighbors {
			i := slices.IndexFunc(sessions, func(s Session) bool { return s.Neighbor == n })
			switch {
			case i < 0:
				down = append(down, n.String()+" (not configured)")
			case sessions[i].State != Established:
				down = append(down, fmt.Sprintf("%s (%s %s)", n, sessions[i].State, sessions[i].Info))
			}
		}
		if len(down) > 0 {
			return fmt.Errorf("not established: %s", strings.Join(down, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("router %s: %w", r.name, err)
	}
	return nil
}
