package agent

import (
	"net/netip"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
)

// Status implements api.Backend.
func (a *Agent) Status() api.Status {
	a.mu.Lock()
	cfg, services, verdicts, ds, routerID, sp, host, kw := a.cfg, a.services, a.verdicts, a.decisions, a.routerID, a.speaker, a.dataPlane.host, a.kube
	a.mu.Unlock()
	bs := sp.Status()

	st := api.Status{Version: a.version, RouterID: routerID.String(), ASN: cfg.BGP.ASN}
	for _, p := range bs.Peers {
		st.Peers = append(st.Peers, api.PeerStatus{
			Name: p.Name, Address: p.Address.String(), ASN: p.ASN, State: string(p.State),
			Since: p.Since, LastError: p.LastError,
			IPv6NextHop: addrString(p.IPv6NextHop), IPv6Problem: p.IPv6Reason,
			ReceivedPrefixes: p.ReceivedPrefixes, DiscardedUpdates: p.DiscardedUpdates,
			Connection: peerConnection(p.Connection),
		})
	}
	st.BFD = bfdStatuses(a.bfd.Status(), cfg.BGP.Peers)
	for _, svc := range services {
		st.Services = append(st.Services, a.serviceStatus(svc.Name, verdicts, ds))
	}
	st.VIPs = vipStatuses(ds, bs, a.boundSet())
	st.LoadBalancers = a.LoadBalancers()
	st.XDP = a.xdpStatus()
	st.HostSettings = make([]api.HostSetting, len(host))
	for i, h := range host {
		st.HostSettings[i] = api.HostSetting{Name: h.Name, Was: h.Was, Now: h.Want}
	}
	if kw != nil {
		ks := kw.Status()
		st.Kubernetes = &api.KubernetesStatus{Node: ks.Node, Connected: ks.Connection.Connected, Since: ks.Connection.Since,
			LastError: ks.Connection.Error, Synced: ks.Synced, LocalCopy: ks.LocalCopy, Allocator: ks.Leader, Services: ks.Services}
	}
	if cs, err := a.Cluster(); err == nil {
		st.Cluster = &cs
	}
	return st
}

func (a *Agent) serviceStatus(name string, verdicts map[string]Verdict, ds []decision) api.ServiceStatus {
	ss := api.ServiceStatus{Name: name, State: "down"}
	if v, ok := verdicts[name]; ok {
		if v.Up {
			ss.State = "up"
		}
	} else {
		hs, _ := a.monitors.status(name)
		ss.Since, ss.LastCheck, ss.LastError, ss.FastRounds = hs.Since, hs.LastCheck, hs.LastError, hs.Fast
		if hs.Up {
			ss.State = "up"
		}
		if !hs.LastCheck.IsZero() {
			ss.LastResult = hs.LastResult.String()
		}
	}
	for _, d := range ds {
		if d.service == name {
			ss.Reason, ss.ReasonCode = d.why(), string(d.reason)
			if d.reason == ReasonDrained || d.reason == ReasonMaintenance {
				ss.State = "drained"
			}
			break
		}
	}
	return ss
}

func vipStatuses(ds []decision, bs bgp.Status, bound map[netip.Addr]string) []api.VIPStatus {
	routes := make(map[netip.Prefix]bgp.RouteStatus, len(bs.Routes))
	for _, r := range bs.Routes {
		routes[r.Route.Prefix] = r
	}
	out := make([]api.VIPStatus, 0, len(ds))
	for _, d := range ds {
		vs := api.VIPStatus{Prefix: d.prefix.String(), Service: d.service, Reason: d.why(), ReasonCode: string(d.reason), Peers: []string{}}
		vs.Interface, vs.Bound = bound[d.prefix.Addr()]
		if d.route != nil {
			vs.Announced = true
			vs.MED, vs.Prepend = d.route.MED, d.route.Prepend
			for _, c := range d.route.Communities {
				vs.Communities = append(vs.Communities, c.String())
			}
			for _, c := range d.route.LargeCommunities {
				vs.LargeCommunities = append(vs.LargeCommunities, c.String())
			}
			rs := routes[d.prefix]
			vs.Peers = append(vs.Peers, rs.Peers...)
			vs.Reason = announceReason(d, rs)
		}
		out = append(out, vs)
	}
	return out
}

// announceReason explains an announced VIP from BGP's side: refused by the
// guard, held by no peer, or sent.
func announceReason(d decision, rs bgp.RouteStatus) string {
	switch {
	case rs.Refused != "":
		return "refused by export guard: " + rs.Refused
	case len(rs.Peers) == 0:
		return d.why() + "; not sent: no established peer takes it"
	default:
		return d.why()
	}
}

func (a *Agent) boundSet() map[netip.Addr]string {
	out := make(map[netip.Addr]string)
	for _, b := range a.binder.Bound() {
		out[b.Addr] = b.Interface
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func bfdStatuses(sessions []bfd.SessionStatus, peers []config.Peer) []api.BFDStatus {
	names := make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		names[p.Address] = p.Name
	}
	out := make([]api.BFDStatus, 0, len(sessions))
	for _, s := range sessions {
		problem := s.LastError
		if problem == "" && s.State != bfd.Up && s.Counters.LastDrop != "" {
			problem = "packets dropped: " + s.Counters.LastDrop
		}
		out = append(out, api.BFDStatus{
			Peer: names[s.Peer.Remote], Remote: s.Peer.Remote.String(), Local: addrString(s.Local),
			Multihop: s.Peer.Multihop, State: s.State.String(), Since: s.Since, RemoteState: s.RemoteState.String(),
			LocalDiscriminator: s.LocalDiscriminator, RemoteDiscriminator: s.RemoteDiscriminator,
			TxInterval: s.TxInterval, RxInterval: s.RxInterval, DetectionTime: s.DetectionTime,
			LastDiag: s.LastDownDiag.String(), RemoteDiag: s.RemoteDiag.String(), Problem: problem,
			Auth: s.Peer.Auth.Name(), AuthFailures: s.Counters.AuthFailures, IgnoredDown: s.Counters.IgnoredDown,
		})
	}
	return out
}

// peerConnection describes the connection of a session; nil for none.
func peerConnection(c *bgp.Connection) *api.PeerConnection {
	if c == nil {
		return nil
	}
	by := "vipd"
	if c.Inbound {
		by = "router"
	}
	return &api.PeerConnection{Local: c.Local.String(), Remote: c.Remote.String(), OpenedBy: by}
}
