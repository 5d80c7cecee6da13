package testnet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (d *birdDaemon) bfdSessions(ctx context.Context) ([]BFDSession, error) {
	out, err := d.birdc(ctx, "show", "bfd", "sessions")
	if err != nil {
		return nil, err
	}
	return parseBirdBFD(out)
}

func (d *frrDaemon) bfdSessions(ctx context.Context) ([]BFDSession, error) {
	out, err := d.vtysh(ctx, "show bfd peers json")
	if err != nil {
		return nil, err
	}
	return parseFRRBFD([]byte(out), time.Now())
}

// parseBirdBFD reads `birdc show bfd sessions` (with `timeformat protocol
// iso long`). Multihop sessions have no interface:
//
//	bfd1:
//	IP address                Interface  State      Since         Interval  Timeout
//	10.255.255.12             ---        Init       2026-11-22 21:04:44    1.000    3.000
//	fd00:255::b               lan0       Up         2026-11-22 21:04:44    0.300    0.900
func parseBirdBFD(out string) ([]BFDSession, error) {
	var sessions []BFDSession
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 7 {
			continue
		}
		addr, err := netip.ParseAddr(f[0])
		if err != nil {
			continue // the header, or another protocol's name
		}
		s := BFDSession{Neighbor: addr, Multihop: f[1] == "---", State: f[2]}
		var errs [3]error
		s.Since, errs[0] = time.ParseInLocation(birdTimeLayout, f[3]+" "+f[4], time.Local)
		s.TxInterval, errs[1] = birdSeconds(f[5])
		s.DetectionTime, errs[2] = birdSeconds(f[6])
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("bfd session %s: %w", addr, err)
			}
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

// birdSeconds reads "0.300" (seconds).
func birdSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(f * float64(time.Second)).Round(time.Microsecond), nil
}

// frrBFDPeerJSON is the part of one `show bfd peers json` entry we read.
// Intervals are in milliseconds; uptime and downtime in seconds.
type frrBFDPeerJSON struct {
	Multihop         bool   `json:"multihop"`
	Peer             string `json:"peer"`
	Status           string `json:"status"`
	Uptime           *int64 `json:"uptime"`   // absent unless up
	Downtime         *int64 `json:"downtime"` // absent when shut down
	RemoteDiag       string `json:"remote-diagnostic"`
	ReceiveInterval  int64  `json:"receive-interval"`
	TransmitInterval int64  `json:"transmit-interval"`
	RemoteReceive    int64  `json:"remote-receive-interval"`
	RemoteTransmit   int64  `json:"remote-transmit-interval"`
	RemoteMultiplier int64  `json:"remote-detect-multiplier"`
}

// frrBFDStates maps FRR's status names to RFC 5880's.
var frrBFDStates = map[string]string{"up": "Up", "down": "Down", "init": "Init", "shutdown": "AdminDown"}

// parseFRRBFD reads `show bfd peers json`. FRR reports its configured
// timers and the remote's; the agreed ones are the larger of each pair
// (RFC 5880 §6.8.7). now dates the uptime or downtime (whole seconds);
// Since stays zero for a shut down peer, which has neither.
func parseFRRBFD(data []byte, now time.Time) ([]BFDSession, error) {
	var peers []frrBFDPeerJSON
	if err := json.Unmarshal(data, &peers); err != nil {
		return nil, fmt.Errorf("parse vtysh json: %w", err)
	}
	var sessions []BFDSession
	for _, p := range peers {
		addr, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return nil, fmt.Errorf("bfd peer %q: %w", p.Peer, err)
		}
		state, ok := frrBFDStates[p.Status]
		if !ok {
			return nil, fmt.Errorf("bfd peer %s: unknown status %q", addr, p.Status)
		}
		var since time.Time
		if age := cmp.Or(p.Uptime, p.Downtime); age != nil {
			since = now.Add(-time.Duration(*age) * time.Second).Truncate(time.Second)
		}
		ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
		sessions = append(sessions, BFDSession{
			Neighbor: addr, Multihop: p.Multihop, State: state, Since: since,
			TxInterval:    ms(max(p.TransmitInterval, p.RemoteReceive)),
			DetectionTime: time.Duration(p.RemoteMultiplier) * ms(max(p.ReceiveInterval, p.RemoteTransmit)),
			RemoteDiag:    p.RemoteDiag,
		})
	}
	slices.SortFunc(sessions, func(a, b BFDSession) int { return a.Neighbor.Compare(b.Neighbor) })
	return sessions, nil
}
