package bfd

import (
	"testing"
	"time"
)

// FuzzSession drives one session with a script of clock steps, received
// packets, timer changes and a shutdown, and checks the invariants of
// RFC 5880 after every step.
func FuzzSession(f *testing.F) {
	f.Add([]byte{1, 1, 0, 1, 3, 0, 0, 30, 0, 1, 3, 16, 2, 2, 0, 0, 100, 0})
	f.Add([]byte{1, 1, 0, 1, 2, 0, 1, 3, 32, 0, 50, 0, 3, 0, 0, 0, 20, 0, 0, 20, 0})
	f.Add([]byte{2, 1, 0, 1, 1, 0, 1, 3, 0, 2, 3, 0, 0, 200, 0, 1, 0, 0})
	intervals := []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 300 * time.Millisecond, time.Second, 3 * time.Second}
	f.Fuzz(func(t *testing.T, script []byte) {
		c := &fakeClock{now: t0}
		var events []Event
		s := newSession(timing300, 7, c, fixedRandom(0.5), func(ev Event) { events = append(events, ev) })
		shutdownSent := -1 // packets sent since Shutdown
		for step := 0; len(script) >= 3 && step < 300; step++ {
			op, a, b := script[0]%4, script[1], script[2]
			script = script[3:]
			switch op {
			case 0:
				c.advance(time.Duration(a) * 10 * time.Millisecond)
			case 1:
				p := ControlPacket{
					Version: 1, State: State(a & 3), Poll: a&4 != 0, Final: a&8 != 0, Demand: a&16 != 0,
					DetectMult: 1 + b%5, MyDiscriminator: 99,
					DesiredMinTx:  intervals[int(b/5)%len(intervals)],
					RequiredMinRx: intervals[int(a/32)%len(intervals)],
				}
				if a&64 != 0 {
					p.YourDiscriminator = 7
				}
				s.Receive(p)
			case 2:
				s.SetTiming(timing{minTx: intervals[1+int(a)%5], minRx: intervals[1+int(b)%5], multiplier: 1 + a%4})
			case 3:
				if shutdownSent < 0 {
					s.Shutdown()
					shutdownSent = 0
				}
			}
			for _, p := range s.Advance() {
				checkSent(t, s, p)
				if shutdownSent >= 0 {
					shutdownSent++
				}
			}
			if shutdownSent > adminDownPackets {
				t.Fatalf("%d packets after Shutdown", shutdownSent)
			}
			if deadline, ok := s.Deadline(); ok && !deadline.After(c.Now()) {
				t.Fatalf("after Advance the next deadline %v is not in the future", deadline.Sub(c.Now()))
			}
			if s.state == Up && s.remote.discr == 0 {
				t.Fatal("Up without a remote discriminator")
			}
			if shutdownSent >= 0 && s.state != AdminDown {
				t.Fatalf("left AdminDown for %s", s.state)
			}
		}
		for i, ev := range events {
			if ev.From == ev.To || (i > 0 && events[i-1].To != ev.From) {
				t.Fatalf("events do not chain: %+v", events)
			}
		}
	})
}

// checkSent checks one packet the session sent.
func checkSent(t *testing.T, s *session, p ControlPacket) {
	t.Helper()
	switch {
	case p.Poll && p.Final:
		t.Fatalf("P and F together: %+v", p)
	case p.Version != 1 || p.MyDiscriminator != 7 || p.DetectMult != s.cfg.multiplier:
		t.Fatalf("bad header: %+v", p)
	case p.State != Up && p.DesiredMinTx < slowTxInterval:
		t.Fatalf("Desired Min TX %v while %s, want at least 1s", p.DesiredMinTx, p.State)
	case p.Poll && p.State != Up:
		t.Fatalf("Poll while %s", p.State)
	}
	if _, err := p.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}
