package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
)

// GoBGP reports failed TCP connection attempts only through its logger, at
// debug level, with the peer address under "Key" and the dial error under
// "Error". gobgpLogHandler is the slog handler vipd gives GoBGP: it turns
// those records into a peer's LastError and forwards GoBGP's warnings and
// errors to vipd's log with vipd's fixed keys. It must never block: GoBGP
// calls it from its own goroutines.
type gobgpLogHandler struct {
	sink  gobgpLogSink
	attrs []slog.Attr // from Logger.With (GoBGP adds Topic and Key per peer)
}

// gobgpLogSink receives what the handler extracts.
type gobgpLogSink interface {
	connectFailed(peer netip.Addr, dialErr string)
	gobgpLog(level slog.Level, msg, peer, detail string)
}

const gobgpConnectFailed = "failed to connect"

func (h *gobgpLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *gobgpLogHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != gobgpConnectFailed && r.Level < slog.LevelWarn {
		return nil
	}
	var peer, detail string
	collect := func(a slog.Attr) bool {
		switch a.Key {
		case "Key":
			peer = a.Value.String()
		case "Error", "Err", "Reason":
			detail = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		collect(a)
	}
	r.Attrs(collect)

	if r.Message == gobgpConnectFailed {
		if addr, err := netip.ParseAddr(peer); err == nil && detail != "" {
			h.sink.connectFailed(addr, detail)
		}
		return nil
	}
	h.sink.gobgpLog(r.Level, r.Message, peer, detail)
	return nil
}

func (h *gobgpLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &gobgpLogHandler{sink: h.sink, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

// WithGroup flattens groups: the handler only looks for a few known keys.
func (h *gobgpLogHandler) WithGroup(string) slog.Handler { return h }

// describeConnectError explains a failed connection attempt to an operator.
// TCP-MD5 mismatches look like an unreachable peer: the peer's kernel drops
// the SYN silently, so the attempt times out.
func describeConnectError(peer netip.AddrPort, dialErr string, hasPassword bool) string {
	cause := dialErr
	if i := strings.LastIndex(dialErr, ": "); i >= 0 {
		cause = dialErr[i+2:]
	}
	switch {
	case strings.Contains(dialErr, "i/o timeout"):
		hint := "peer unreachable or not configured for this address, or it requires a TCP-MD5 password"
		if hasPassword {
			hint = "MD5 password mismatch, or peer unreachable/not configured"
		}
		return fmt.Sprintf("TCP connection to %s not established: timeout (%s)", peer, hint)
	case strings.Contains(dialErr, "connection refused"):
		return fmt.Sprintf("TCP connection to %s refused: nothing listens on the peer's port (BGP not running there, or wrong port)", peer)
	case strings.Contains(dialErr, "connection reset"):
		return fmt.Sprintf("TCP connection to %s reset by the peer (peer not configured for this address, or MD5 password mismatch)", peer)
	case strings.Contains(dialErr, "cannot assign requested address"):
		return fmt.Sprintf("TCP connection to %s failed: the source address is not on this host", peer)
	case strings.Contains(dialErr, "no route to host"), strings.Contains(dialErr, "network is unreachable"):
		return fmt.Sprintf("TCP connection to %s failed: %s (no route to the peer)", peer, cause)
	}
	return fmt.Sprintf("TCP connection to %s failed: %s", peer, cause)
}
