package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/dataplane"
	"github.com/vipd/vipd/internal/dataplane/xdp"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/metrics"
)

// XDPPlane is the XDP data plane of load balancers in mode dsr.
// *xdp.Plane satisfies it.
type XDPPlane interface {
	Set(ctx context.Context, s xdp.State) error
	Interfaces() []xdp.InterfaceStatus
	Counters() (map[string]xdp.Counter, error)
	// Close detaches the program everywhere.
	Close() error
}

// resolveFunc finds backends' MACs (xdp.Resolve).
type resolveFunc func(ctx context.Context, addrs []netip.Addr, wait time.Duration) (map[netip.Addr]xdp.Neighbor, map[netip.Addr]error)

func newXDPPlane(log *slog.Logger) (XDPPlane, error) { return xdp.New(log) }

// xdpPlane is the agent's side of the XDP data plane, owned by the loop;
// Status reads err, backends and plane under a.mu.
type xdpPlane struct {
	plane    XDPPlane // nil until the first dsr load balancer
	last     *xdp.State
	err      error // the last Set's: dsr load balancers are withdrawn while set
	backends []api.XDPBackendStatus
	inTable  map[tableEntry]bool // dsr backends the program sends flows to
	seen     map[netip.Addr]bool // backends resolved, or tried, before
	refresh  *time.Timer         // the next pass that re-reads the MACs
}

const (
	// resolveWait is how long a pass waits for the MAC of a backend it
	// has not resolved before; others are only looked up.
	resolveWait = time.Second
	// A pass re-reads the MACs this often while some are missing, and
	// otherwise this often, so a backend that changed its MAC is followed.
	retryResolve   = 2 * time.Second
	refreshResolve = 30 * time.Second
)

// isDSR reports whether l is served by the XDP data plane.
func isDSR(l dataplane.LoadBalancer) bool { return l.Mode == lb.ModeDSR }

// applyXDP programs the dsr load balancers of want into the XDP data plane,
// with the MACs of their backends. A failure is kept in a.xdp.err: the
// pass then withdraws every dsr load balancer and retries.
func (a *Agent) applyXDP(ctx context.Context, want dataplane.State) {
	x := &a.xdp
	var dsr []dataplane.LoadBalancer
	for _, l := range want.LoadBalancers {
		if isDSR(l) {
			dsr = append(dsr, l)
		}
	}
	if len(dsr) == 0 && x.plane == nil {
		return
	}
	if x.plane == nil {
		p, err := a.act.newXDP(a.log)
		if err != nil {
			a.setXDP(fmt.Errorf("load the XDP program: %w", err), nil, nil)
			return
		}
		a.mu.Lock()
		x.plane = p
		a.mu.Unlock()
	}
	var state xdp.State
	var backends []api.XDPBackendStatus
	inTable := map[tableEntry]bool{}
	if len(dsr) > 0 {
		ifaces, err := a.xdpInterfaces()
		if err != nil {
			a.setXDP(err, nil, nil)
			return
		}
		state.Interfaces = ifaces
		state.LoadBalancers, backends = a.xdpLoadBalancers(ctx, dsr, ifaces, inTable)
		a.scheduleResolve(backends)
	}
	if x.last != nil && x.err == nil && reflect.DeepEqual(*x.last, state) {
		a.setXDP(nil, backends, inTable)
		return
	}
	err := x.plane.Set(ctx, state)
	x.last = &state
	a.setXDP(err, backends, inTable)
}

func (a *Agent) setXDP(err error, backends []api.XDPBackendStatus, inTable map[tableEntry]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.xdp.last = nil // retry in full
	}
	a.xdp.err, a.xdp.backends, a.xdp.inTable = err, backends, inTable
}

// xdpError is why the XDP data plane does not work, or nil.
func (a *Agent) xdpError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.xdp.err
}

// xdpInterfaces are the interfaces the program runs on: the config's, or
// the one towards the first peer.
func (a *Agent) xdpInterfaces() ([]string, error) {
	if ifs := a.cfg.DataPlane.XDP.Interfaces; len(ifs) > 0 {
		return ifs, nil
	}
	if len(a.cfg.BGP.Peers) == 0 {
		return nil, errors.New("dataplane.xdp.interfaces: not set, and there is no BGP peer to find the interface towards")
	}
	name, err := xdp.InterfaceTowards(a.cfg.BGP.Peers[0].Address)
	if err != nil {
		return nil, fmt.Errorf("dataplane.xdp.interfaces: not set, and the interface towards peer %s: %w", a.cfg.BGP.Peers[0].Name, err)
	}
	return []string{name}, nil
}

// xdpLoadBalancers resolves the backends' MACs and returns the load
// balancers with the backends that have one behind an interface the
// program runs on, and every backend's status. It records in inTable the
// backends that get flows.
func (a *Agent) xdpLoadBalancers(ctx context.Context, dsr []dataplane.LoadBalancer, ifaces []string, inTable map[tableEntry]bool) ([]xdp.LoadBalancer, []api.XDPBackendStatus) {
	onXDP := map[int]string{}
	for _, name := range ifaces {
		if ifc, err := net.InterfaceByName(name); err == nil {
			onXDP[ifc.Index] = name
		}
	}
	neigh, failed := a.resolveBackends(ctx, dsr)
	names := a.lbNames()
	var lbs []xdp.LoadBalancer
	var statuses []api.XDPBackendStatus
	for _, l := range dsr {
		xl := xdp.LoadBalancer{ID: l.ID, Address: l.Address, Port: l.Port, Protocol: l.Protocol}
		for _, b := range l.Backends {
			st := api.XDPBackendStatus{LoadBalancer: names[l.ID], Backend: b.Addr.String()}
			n, ok := neigh[b.Addr.Addr()]
			switch {
			case !ok:
				st.Problem = fmt.Sprint(failed[b.Addr.Addr()])
			case onXDP[n.Ifindex] == "":
				st.MAC = n.MAC.String()
				st.Problem = fmt.Sprintf("reached through interface %d, where the XDP program does not run (dataplane.xdp.interfaces)", n.Ifindex)
			default:
				st.MAC, st.Interface = n.MAC.String(), onXDP[n.Ifindex]
				xl.Backends = append(xl.Backends, xdp.Backend{Addr: b.Addr, Weight: b.Weight, MAC: n.MAC, Ifindex: n.Ifindex})
				inTable[tableEntry{l.ID, b.Addr}] = true
			}
			statuses = append(statuses, st)
		}
		lbs = append(lbs, xl)
	}
	return lbs, statuses
}

// resolveBackends looks up the backends' MACs, waiting only for those it
// has not tried before, so that a backend that does not answer delays one
// pass, not all of them.
func (a *Agent) resolveBackends(ctx context.Context, dsr []dataplane.LoadBalancer) (map[netip.Addr]xdp.Neighbor, map[netip.Addr]error) {
	var fresh, known []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, l := range dsr {
		for _, b := range l.Backends {
			addr := b.Addr.Addr()
			if seen[addr] {
				continue
			}
			seen[addr] = true
			if a.xdp.seen[addr] {
				known = append(known, addr)
			} else {
				fresh = append(fresh, addr)
			}
		}
	}
	a.xdp.seen = seen
	found, failed := a.act.resolve(ctx, fresh, resolveWait)
	f2, e2 := a.act.resolve(ctx, known, 0)
	for k, v := range f2 {
		found[k] = v
	}
	for k, v := range e2 {
		failed[k] = v
	}
	return found, failed
}

// scheduleResolve wakes the loop to read the MACs again: soon while one
// is missing, else now and then.
func (a *Agent) scheduleResolve(backends []api.XDPBackendStatus) {
	after := refreshResolve
	for _, b := range backends {
		if b.Problem != "" {
			after = retryResolve
		}
	}
	if a.xdp.refresh != nil {
		a.xdp.refresh.Stop()
	}
	a.xdp.refresh = time.AfterFunc(after, a.Wake)
}

// lbNames maps load balancer UUIDs to names, for status.
func (a *Agent) lbNames() map[string]string {
	out := map[string]string{}
	for _, l := range a.loadBalancers() {
		out[l.UUID] = l.Spec.Name
	}
	return out
}

// dsrServes reports whether backend b of l gets flows from the data
// plane: always for nftables load balancers once healthy, and for dsr ones
// only with a MAC on an interface the program runs on.
func (a *Agent) dsrServes(l lb.LoadBalancer, b lb.Backend) bool {
	if l.Spec.Mode != lb.ModeDSR {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.xdp.inTable[tableEntry{l.UUID, b.AddrPort()}]
}

// closeXDP detaches the program, on shutdown after the withdrawal.
func (a *Agent) closeXDP() error {
	if a.xdp.refresh != nil {
		a.xdp.refresh.Stop()
	}
	if a.xdp.plane == nil {
		return nil
	}
	return a.xdp.plane.Close()
}

// xdpStatus is the XDP data plane for status, nil if it never ran.
func (a *Agent) xdpStatus() *api.XDPStatus {
	a.mu.Lock()
	plane, err, backends := a.xdp.plane, a.xdp.err, a.xdp.backends
	a.mu.Unlock()
	if plane == nil {
		return nil
	}
	st := &api.XDPStatus{Backends: backends, Interfaces: []api.XDPInterfaceStatus{}}
	if err != nil {
		st.Error = err.Error()
	}
	if st.Backends == nil {
		st.Backends = []api.XDPBackendStatus{}
	}
	for _, i := range plane.Interfaces() {
		st.Interfaces = append(st.Interfaces, api.XDPInterfaceStatus{Name: i.Name, Mode: string(i.Mode), Error: i.Error})
	}
	return st
}

// xdpMetrics adds the XDP counters and interfaces to a metrics snapshot.
func (a *Agent) xdpMetrics(snap *metrics.Snapshot, ids []string) {
	a.mu.Lock()
	plane := a.xdp.plane
	a.mu.Unlock()
	if plane == nil {
		return
	}
	counters, err := plane.Counters()
	if err != nil {
		a.log.Warn("XDP counters not read", "event", "metrics", "err", err)
	}
	for i := range snap.LoadBalancers {
		if c, ok := counters[ids[i]]; ok {
			snap.LoadBalancers[i].XDP = &metrics.XDPCounter{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	for _, i := range plane.Interfaces() {
		snap.XDPInterfaces = append(snap.XDPInterfaces, metrics.XDPInterface{Name: i.Name, Mode: string(i.Mode)})
	}
}
