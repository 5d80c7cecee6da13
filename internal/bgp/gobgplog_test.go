package bgp

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

type recordingSink struct {
	connect []string
	logs    []string
}

func (r *recordingSink) connectFailed(peer netip.Addr, dialErr string) {
	r.connect = append(r.connect, peer.String()+" "+dialErr)
}

func (r *recordingSink) gobgpLog(level slog.Level, msg, peer, detail string) {
	r.logs = append(r.logs, level.String()+" "+msg+" peer="+peer+" detail="+detail)
}

// The handler gets GoBGP's records the way GoBGP writes them: a per-peer
// logger made with With("Topic", "Peer", "Key", address).
func TestGoBGPLogHandler(t *testing.T) {
	sink := &recordingSink{}
	log := slog.New(&gobgpLogHandler{sink: sink})
	peerLog := log.With(slog.String("Topic", "Peer"), slog.String("Key", "10.0.0.1"))

	peerLog.Debug("failed to connect", slog.String("Error", "dial tcp 10.0.0.2:0->10.0.0.1:179: i/o timeout"))
	peerLog.Debug("sent update", slog.String("Error", "ignored"))
	peerLog.Info("Peer Up")
	peerLog.Warn("hold timer expired", slog.String("State", "BGP_FSM_ESTABLISHED"))
	log.Error("failed to listen", slog.String("Error", "address in use"))
	log.Debug("failed to connect", slog.String("Error", "no peer key")) // no Key: ignored

	wantConnect := []string{"10.0.0.1 dial tcp 10.0.0.2:0->10.0.0.1:179: i/o timeout"}
	if strings.Join(sink.connect, "|") != strings.Join(wantConnect, "|") {
		t.Errorf("connect failures = %q, want %q", sink.connect, wantConnect)
	}
	wantLogs := []string{
		"WARN hold timer expired peer=10.0.0.1 detail=",
		"ERROR failed to listen peer= detail=address in use",
	}
	if strings.Join(sink.logs, "|") != strings.Join(wantLogs, "|") {
		t.Errorf("forwarded = %q, want %q", sink.logs, wantLogs)
	}
}

func TestDescribeConnectError(t *testing.T) {
	peer := netip.MustParseAddrPort("10.0.0.1:179")
	tests := []struct {
		err         string
		hasPassword bool
		want        string
	}{
		{"dial tcp 10.0.0.2:0->10.0.0.1:179: i/o timeout", true,
			"TCP connection to 10.0.0.1:179 not established: timeout (MD5 password mismatch, or peer unreachable/not configured)"},
		{"dial tcp 10.0.0.2:0->10.0.0.1:179: i/o timeout", false,
			"TCP connection to 10.0.0.1:179 not established: timeout (peer unreachable or not configured for this address, or it requires a TCP-MD5 password)"},
		{"dial tcp 10.0.0.2:0->10.0.0.1:179: connect: connection refused", false,
			"TCP connection to 10.0.0.1:179 refused: nothing listens on the peer's port (BGP not running there, or wrong port)"},
		{"dial tcp 10.0.0.9:0->10.0.0.1:179: bind: cannot assign requested address", false,
			"TCP connection to 10.0.0.1:179 failed: the source address is not on this host"},
		{"dial tcp 10.0.0.2:0->10.0.0.1:179: connect: no route to host", false,
			"TCP connection to 10.0.0.1:179 failed: no route to host (no route to the peer)"},
		{"something new", false, "TCP connection to 10.0.0.1:179 failed: something new"},
	}
	for _, tt := range tests {
		if got := describeConnectError(peer, tt.err, tt.hasPassword); got != tt.want {
			t.Errorf("describeConnectError(%q, %v)\n got %s\nwant %s", tt.err, tt.hasPassword, got, tt.want)
		}
	}
}
