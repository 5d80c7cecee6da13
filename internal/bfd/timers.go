package bfd

import "time"

// slowTxInterval is the floor of the Desired Min TX Interval we advertise
// while a session is not Up (RFC 5880 §6.8.3).
const slowTxInterval = time.Second

// intervals are the two timers a system advertises in every packet.
type intervals struct {
	tx time.Duration // Desired Min TX Interval
	rx time.Duration // Required Min RX Interval
}

// negotiation carries our advertised intervals through Poll Sequences
// (RFC 5880 §6.8.3). While Up, a change is proposed with the P bit set and
// takes full effect once the remote answers with F; a second change waits
// for the first Poll to end. While not Up, changes apply at once.
type negotiation struct {
	acked    intervals // in force: acknowledged, or set while not Up
	polling  bool      // a Poll Sequence proposes `proposed`
	proposed intervals
}

// advertised is what our packets carry.
func (n *negotiation) advertised() intervals {
	if n.polling {
		return n.proposed
	}
	return n.acked
}

// txBase is the Desired Min TX Interval we transmit by. During a Poll a
// decrease applies at once; an increase waits for the Final, so the
// remote's detection time grows before our packets slow down.
func (n *negotiation) txBase() time.Duration {
	if n.polling {
		return min(n.acked.tx, n.proposed.tx)
	}
	return n.acked.tx
}

// rxBase is the Required Min RX Interval our detection time uses. During a
// Poll an increase applies at once; a decrease waits for the Final, so the
// remote is sending faster before we expect it to.
func (n *negotiation) rxBase() time.Duration {
	if n.polling {
		return max(n.acked.rx, n.proposed.rx)
	}
	return n.acked.rx
}

// update moves the advertised intervals towards want and reports whether a
// Poll Sequence started (its first packet should go out at once).
func (n *negotiation) update(want intervals, up bool) bool {
	if !up {
		n.acked, n.polling = want, false
		return false
	}
	if n.polling || want == n.acked {
		return false
	}
	n.polling, n.proposed = true, want
	return true
}

// final ends the running Poll Sequence: the remote acknowledged proposed.
func (n *negotiation) final() {
	if n.polling {
		n.acked, n.polling = n.proposed, false
	}
}

// txInterval is the negotiated transmit interval: the larger of our Desired
// Min TX in force and the remote's Required Min RX (RFC 5880 §6.8.7).
func txInterval(ourTx, remoteMinRx time.Duration) time.Duration {
	return max(ourTx, remoteMinRx)
}

// rxInterval is the interval at which we expect the remote's packets: the
// larger of our Required Min RX in force and its Desired Min TX.
func rxInterval(ourRx, remoteTx time.Duration) time.Duration {
	return max(ourRx, remoteTx)
}

// detectionTime is how long the remote may stay silent in asynchronous
// mode: its Detect Mult times the agreed receive interval (RFC 5880 §6.8.4).
func detectionTime(remoteMult uint8, ourRx, remoteTx time.Duration) time.Duration {
	return time.Duration(remoteMult) * rxInterval(ourRx, remoteTx)
}

// jittered shortens interval by a random 0-25 %, or 10-25 % when our Detect
// Mult is 1, so packets never line up (RFC 5880 §6.8.7). random returns a
// number in [0, 1).
func jittered(interval time.Duration, detectMult uint8, random func() float64) time.Duration {
	low, high := 0.75, 1.0
	if detectMult == 1 {
		high = 0.9
	}
	return time.Duration(float64(interval) * (low + (high-low)*random()))
}
