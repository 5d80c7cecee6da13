package lab

import (
	"context"
	"net/netip"
	"strings"

	"github.com/vipd/vipd/internal/testnet"
)

// World is the lab described for scripts: `vipd lab status --json`.
type World struct {
	Prefix   string        `json:"prefix"`
	Topology string        `json:"topology"`
	Routers  []WorldRouter `json:"routers"`
	Nodes    []WorldNode   `json:"nodes"`
	VIPs     []netip.Addr  `json:"vips"`
	Client   WorldMember   `json:"client"`
}

// WorldRouter is one router: Role is core, tor, rr or provider; Rack is
// set where it belongs to one. Nexthops are its kernel FIB's for each VIP.
type WorldRouter struct {
	Name      string                  `json:"name"`
	Role      string                  `json:"role"`
	Rack      int                     `json:"rack,omitempty"`
	Namespace string                  `json:"namespace"`
	Address   netip.Addr              `json:"address"`
	ASN       uint32                  `json:"asn"`
	Nexthops  map[string][]netip.Addr `json:"nexthops"`
}

// WorldNode is one vipd node; Lab is what the lab did to it: healthy,
// failed, killed or failed,killed.
type WorldNode struct {
	Name      string     `json:"name"`
	Rack      int        `json:"rack,omitempty"`
	Namespace string     `json:"namespace"`
	Address   netip.Addr `json:"address"`
	Address6  netip.Addr `json:"address6"`
	ASN       uint32     `json:"asn"`
	Peer      string     `json:"peer"` // the router its vipd peers with
	Lab       string     `json:"lab"`
}

// WorldMember is a plain member of the world.
type WorldMember struct {
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Address   netip.Addr `json:"address"`
}

// Describe returns the lab's world, with each router's nexthops now.
func (l *Lab) Describe(ctx context.Context) (World, error) {
	w := World{Prefix: l.opts.Prefix, Topology: l.topo.name, VIPs: vips, Routers: []WorldRouter{}, Nodes: []WorldNode{}}
	for _, lr := range l.topo.layout.Routers {
		r := l.world.Router(lr.Name)
		if r == nil {
			continue
		}
		wr := WorldRouter{Name: lr.Name, Role: lr.Role, Rack: lr.Rack, Namespace: r.Namespace(), Address: r.Addr4(), ASN: r.ASN(),
			Nexthops: map[string][]netip.Addr{}}
		for _, vip := range vips {
			hops, err := r.FIB(ctx, netip.PrefixFrom(vip, vip.BitLen()))
			if err != nil {
				return World{}, err
			}
			wr.Nexthops[vip.String()] = append([]netip.Addr{}, hops...)
		}
		w.Routers = append(w.Routers, wr)
	}
	for _, n := range l.world.Nodes() {
		ln := l.topo.node(n.Name())
		state, err := l.labState(ctx, n)
		if err != nil {
			return World{}, err
		}
		w.Nodes = append(w.Nodes, WorldNode{Name: n.Name(), Rack: ln.Rack, Namespace: n.Namespace(), Address: n.Addr4(), Address6: n.Addr6(),
			ASN: ln.ASN, Peer: l.topo.peer(n.Name()), Lab: state})
	}
	if c := l.world.Client(); c != nil {
		w.Client = WorldMember{Name: c.Name(), Namespace: c.Namespace(), Address: c.Addr4()}
	}
	return w, nil
}

// labState is what the lab did to node n: healthy, failed, killed or both.
func (l *Lab) labState(ctx context.Context, n *testnet.Node) (string, error) {
	cut, err := isCut(ctx, n)
	if err != nil {
		return "", err
	}
	var did []string
	if exists(failFile(n)) {
		did = append(did, "failed")
	}
	if cut {
		did = append(did, "killed")
	}
	if len(did) == 0 {
		return "healthy", nil
	}
	return strings.Join(did, ","), nil
}
