package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// onPeerEvent is GoBGP's peer-state callback. It runs on GoBGP's watcher
// goroutine: it only updates the status view, logs and signals.
func (s *Speaker) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev == nil || ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	var negotiated []bgp.Family
	if st.SessionState == bgp.BGP_FSM_ESTABLISHED {
		negotiated = negotiatedFamilies(st.LocalCap, st.RemoteCap)
	}
	why := describeDisconnect(st.DisconnectReason, st.DisconnectMessage)
	change, ok := s.state.peerState(st.NeighborAddress, st.SessionState, at, why, negotiated)
	if !ok {
		return
	}
	level := slog.LevelInfo
	if change.from == StateEstablished {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "bgp session state changed",
		"event", "peer_state", "peer", change.name, "address", change.addr, "from", change.from, "to", change.to, "reason", why)
	signal(s.notify)
	signal(s.kick)
}

// connectFailed implements gobgpLogSink: GoBGP failed to open the TCP
// connection to peer.
func (s *Speaker) connectFailed(peer netip.Addr, dialErr string) {
	change, ok := s.state.connectFailed(peer, dialErr)
	if !ok {
		return
	}
	s.log.Warn("bgp peer not reachable", "event", "peer_error", "peer", change.name, "address", change.addr, "reason", change.lastError)
	signal(s.notify)
}

// gobgpLog implements gobgpLogSink: it forwards GoBGP's warnings and errors.
func (s *Speaker) gobgpLog(level slog.Level, msg, peer, detail string) {
	s.log.Log(context.Background(), level, "gobgp: "+msg, "event", "gobgp", "address", peer, "reason", detail)
}

// describeDisconnect explains why GoBGP left a state; "" when there is
// nothing to explain (a normal step towards Established).
func describeDisconnect(reason api.PeerState_DisconnectReason, msg string) string {
	switch reason {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED:
		return ""
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return "hold timer expired: nothing received from the peer within the hold time"
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		return "NOTIFICATION received from the peer: " + strings.TrimPrefix(msg, "notification-received ")
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		return "NOTIFICATION sent to the peer: " + strings.TrimPrefix(msg, "notification-sent ")
	case api.PeerState_DISCONNECT_REASON_READ_FAILED:
		return "the peer closed the connection or it broke (read failed)"
	case api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return "sending to the peer failed (write failed)"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		return "invalid message from the peer"
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return "the peer's OPEN carries a different AS than the configured asn"
	case api.PeerState_DISCONNECT_REASON_ADMIN_DOWN, api.PeerState_DISCONNECT_REASON_DECONFIGURED:
		return "" // vipd's own doing (peer removed or re-created), not an error
	case api.PeerState_DISCONNECT_REASON_HARD_RESET, api.PeerState_DISCONNECT_REASON_RESTART_TIMER_EXPIRED:
		return msg
	}
	return "" // timers and steps of a normal session start
}

// negotiatedFamilies are the multiprotocol families both sides announced.
func negotiatedFamilies(local, remote []bgp.ParameterCapabilityInterface) []bgp.Family {
	mine := multiprotocolFamilies(local)
	theirs := multiprotocolFamilies(remote)
	if len(theirs) == 0 {
		theirs = []bgp.Family{bgp.RF_IPv4_UC} // RFC 4760: no capability means IPv4 unicast
	}
	var out []bgp.Family
	for _, f := range theirs {
		if slices.Contains(mine, f) {
			out = append(out, f)
		}
	}
	if out == nil {
		out = []bgp.Family{} // established without a shared family: still "known"
	}
	return out
}

func multiprotocolFamilies(caps []bgp.ParameterCapabilityInterface) []bgp.Family {
	var out []bgp.Family
	for _, c := range caps {
		if mp, ok := c.(*bgp.CapMultiProtocol); ok {
			out = append(out, mp.CapValue)
		}
	}
	return out
}
