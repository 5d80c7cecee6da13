// Package bfd is vipd's Bidirectional Forwarding Detection: RFC 5880 in
// asynchronous mode, over UDP single-hop (RFC 5881, port 3784) and
// multihop (RFC 5883, port 4784), for IPv4 and IPv6, with keyed MD5 and
// SHA1 authentication (plain and meticulous). It has no Echo and no
// Demand mode of its own.
//
// The agent hands a Manager the full desired set of sessions (Set) and
// reads state changes from Events. A session failure is an Up → Down
// change the remote did not announce as AdminDown (Event.Failure); that
// is what should tear down a BGP session (RFC 5882 §3.2).
//
// Layout: packet.go is the codec, auth.go the Authentication Section,
// check.go the reception checks, session.go
// the state machine (no I/O, driven by a clock), timers.go the interval
// arithmetic and Poll Sequences, transport.go the sockets, manager.go and
// runner.go the goroutines that tie them together.
package bfd

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults for zero Peer fields (SPEC §2, peers[].bfd).
const (
	DefaultMinTx      = 300 * time.Millisecond
	DefaultMinRx      = 300 * time.Millisecond
	DefaultMultiplier = 3
	// DefaultMinTTL accepts multihop packets of any TTL, as BIRD does:
	// RFC 5883 leaves the check to configuration, and routers differ
	// (BIRD 2 sends TTL 64, FRR 255). Single-hop always requires 255.
	DefaultMinTTL = 1
)

// ErrClosed is returned by Set after Run has returned.
var ErrClosed = errors.New("bfd: manager is closed")

// Peer is one desired BFD session. Zero timer fields take the defaults.
type Peer struct {
	// Local is the source address. Zero: the address the kernel would use
	// towards Remote, looked up when the session's socket opens.
	Local      netip.Addr    `json:"local,omitzero"`
	Remote     netip.Addr    `json:"remote"`
	Multihop   bool          `json:"multihop"`   // RFC 5883 (UDP 4784); else RFC 5881 (UDP 3784)
	MinTx      time.Duration `json:"min_tx"`     // Desired Min TX Interval once Up
	MinRx      time.Duration `json:"min_rx"`     // Required Min RX Interval
	Multiplier uint8         `json:"multiplier"` // Detect Mult
	MinTTL     uint8         `json:"min_ttl"`    // multihop: lowest TTL accepted; single-hop: 255
	Auth       Auth          `json:"auth,omitzero"`
}

// Key identifies a session: a change of any other Peer field changes the
// session in place.
type Key struct {
	Local    netip.Addr `json:"local,omitzero"`
	Remote   netip.Addr `json:"remote"`
	Multihop bool       `json:"multihop"`
}

// Key is the peer's session identity.
func (p Peer) Key() Key {
	return Key{Local: p.Local, Remote: p.Remote, Multihop: p.Multihop}
}

// String reads "10.0.0.1 multihop from 10.0.0.2", or "from auto" when
// the kernel picks the source address.
func (k Key) String() string {
	hop := "single-hop"
	if k.Multihop {
		hop = "multihop"
	}
	local := "auto"
	if k.Local.IsValid() {
		local = k.Local.String()
	}
	return fmt.Sprintf("%s %s from %s", k.Remote, hop, local)
}

// Event is a session's state change.
type Event struct {
	Key         Key       `json:"key"`
	From        State     `json:"from"`
	To          State     `json:"to"`
	Diag        Diag      `json:"diag"`         // our reason for the change
	RemoteState State     `json:"remote_state"` // what the remote last said
	RemoteDiag  Diag      `json:"remote_diag"`
	At          time.Time `json:"at"`
}

// Failure reports whether the event is a detected failure of a session
// that was Up: its packets stopped, or the remote went Down. A remote
// AdminDown (RFC 5882 §3.2) and our own removal of the session are not
// failures.
func (e Event) Failure() bool {
	return e.From == Up && e.To == Down && e.RemoteState != AdminDown
}

// SessionStatus is a snapshot of one session.
type SessionStatus struct {
	Peer                Peer          `json:"peer"`
	Local               netip.Addr    `json:"local,omitzero"` // source address in use
	LocalPort           uint16        `json:"local_port,omitempty"`
	State               State         `json:"state"`
	Since               time.Time     `json:"since"`
	RemoteState         State         `json:"remote_state"`
	LocalDiscriminator  uint32        `json:"local_discriminator"`
	RemoteDiscriminator uint32        `json:"remote_discriminator"`
	LocalDiag           Diag          `json:"local_diag"`     // as sent now
	RemoteDiag          Diag          `json:"remote_diag"`    // as last received
	LastDownDiag        Diag          `json:"last_down_diag"` // why it last went Down or AdminDown
	TxInterval          time.Duration `json:"tx_interval"`    // agreed, before jitter
	RxInterval          time.Duration `json:"rx_interval"`    // agreed
	DetectionTime       time.Duration `json:"detection_time"`
	RemoteMultiplier    uint8         `json:"remote_multiplier"`
	Polling             bool          `json:"polling"` // a Poll Sequence is running
	Counters            Counters      `json:"counters"`
	// LastError says why the session cannot run (its socket would not
	// open) or why its last packet could not be sent; empty when fine.
	LastError string `json:"last_error,omitempty"`
}

// Counters count a session's packets.
type Counters struct {
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	Dropped    uint64 `json:"dropped"`
	// AuthFailures counts packets dropped because their authentication
	// was missing, of another type or key ID, wrong, or replayed.
	AuthFailures uint64 `json:"auth_failures"`
	// IgnoredDown counts packets of an unauthenticated session that said
	// Down with Your Discriminator 0 and a My Discriminator other than the
	// remote's, while Up: what one spoofed packet looks like (they are
	// dropped; a remote that really restarted is caught by the detection
	// time instead).
	IgnoredDown uint64 `json:"ignored_down"`
	// LastDrop says why the last dropped packet was dropped, e.g.
	// "TTL 64 < min_ttl 254".
	LastDrop   string    `json:"last_drop,omitempty"`
	LastDropAt time.Time `json:"last_drop_at,omitzero"`
}

// normalize fills in defaults and checks the peers; every problem is
// reported, naming the peer.
func normalize(peers []Peer) ([]Peer, error) {
	var errs []error
	out := make([]Peer, 0, len(peers))
	seen := map[Key]bool{}
	for _, p := range peers {
		p = p.withDefaults()
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("bfd peer %s: %w", p.Key(), err))
			continue
		}
		if seen[p.Key()] {
			errs = append(errs, fmt.Errorf("bfd peer %s: duplicate", p.Key()))
			continue
		}
		seen[p.Key()] = true
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func (p Peer) withDefaults() Peer {
	p.Local, p.Remote = p.Local.Unmap(), p.Remote.Unmap()
	if p.MinTx == 0 {
		p.MinTx = DefaultMinTx
	}
	if p.MinRx == 0 {
		p.MinRx = DefaultMinRx
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	switch {
	case !p.Multihop:
		p.MinTTL = 255
	case p.MinTTL == 0:
		p.MinTTL = DefaultMinTTL
	}
	return p
}

func (p Peer) validate() error {
	var errs []error
	switch {
	case !p.Remote.IsValid() || p.Remote.IsUnspecified() || p.Remote.IsMulticast():
		errs = append(errs, fmt.Errorf("remote %v: not a unicast address", p.Remote))
	case p.Local.IsValid() && p.Local.Is4() != p.Remote.Is4():
		errs = append(errs, fmt.Errorf("local %s and remote %s: different families", p.Local, p.Remote))
	}
	if err := p.Auth.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"min_tx", p.MinTx}, {"min_rx", p.MinRx}} {
		if d.value < time.Microsecond || d.value > maxInterval {
			errs = append(errs, fmt.Errorf("%s %v: want 1µs to %v", d.name, d.value, maxInterval))
		}
	}
	return errors.Join(errs...)
}

// timing is the part of the peer the state machine uses.
func (p Peer) timing() timing {
	return timing{minTx: p.MinTx, minRx: p.MinRx, multiplier: p.Multiplier}
}
