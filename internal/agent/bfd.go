package agent

import (
	"context"
	"net/netip"

	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
)

// bfdPeers is the BFD session wanted for each peer with bfd enabled.
func bfdPeers(peers []config.Peer) []bfd.Peer {
	var out []bfd.Peer
	for _, p := range peers {
		if !p.BFD.Enabled {
			continue
		}
		out = append(out, bfd.Peer{
			Local: p.SourceAddress, Remote: p.Address, Multihop: p.BFD.Multihop,
			MinTx: p.BFD.MinTx, MinRx: p.BFD.MinRx, Multiplier: p.BFD.Multiplier, MinTTL: p.BFD.MinTTL,
			Auth: bfd.Auth{Type: bfd.AuthType(p.BFD.Auth.Type.Number()), KeyID: p.BFD.Auth.KeyID, Key: p.BFD.Auth.Key.Reveal()},
		})
	}
	return out
}

// onBFDEvent tears a BGP session down when BFD detects that the path to
// its peer failed while the session was up. A session that came up after
// the failure, a remote AdminDown (RFC 5882 §3.2) and a BFD session that
// never came up leave BGP alone.
func (a *Agent) onBFDEvent(ctx context.Context, ev bfd.Event) {
	a.log.Info("bfd session state", "event", "bfd_state", "peer", a.peerName(ev.Key.Remote), "address", ev.Key.Remote,
		"from", ev.From.String(), "to", ev.To.String(), "reason", ev.Diag.String(),
		"remote_state", ev.RemoteState.String())
	if !ev.Failure() {
		return
	}
	a.mu.Lock()
	sp := a.speaker
	a.mu.Unlock()
	if !establishedBefore(sp.Status().Peers, ev.Key.Remote, ev) {
		return
	}
	if err := sp.ResetPeer(ctx, ev.Key.Remote, "BFD down: "+ev.Diag.String()); err != nil {
		a.log.Error("bgp reset after BFD failure", "event", "bfd_reset", "peer", a.peerName(ev.Key.Remote), "address", ev.Key.Remote, "err", err)
	}
}

// peerName is the configured name of the peer at addr, for logs.
func (a *Agent) peerName(addr netip.Addr) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.cfg.BGP.Peers {
		if p.Address == addr {
			return p.Name
		}
	}
	return addr.String()
}

// establishedBefore reports whether the BGP session with addr was up
// before the BFD event: only such a session is the one BFD watched fail.
func establishedBefore(peers []bgp.PeerStatus, addr netip.Addr, ev bfd.Event) bool {
	for _, p := range peers {
		if p.Address == addr {
			return p.State == bgp.StateEstablished && p.Since.Before(ev.At)
		}
	}
	return false
}
