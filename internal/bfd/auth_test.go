package bfd

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/config"
)

var authTypes = []AuthType{AuthKeyedMD5, AuthMeticulousKeyedMD5, AuthKeyedSHA1, AuthMeticulousKeyedSHA1}

func authPacket() ControlPacket {
	return ControlPacket{Version: Version, State: Up, DetectMult: 3, MyDiscriminator: 7, YourDiscriminator: 9,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond}
}

func TestSignVerify(t *testing.T) {
	for _, typ := range authTypes {
		t.Run(typ.String(), func(t *testing.T) {
			a := Auth{Type: typ, KeyID: 5, Key: "s3cret"}
			p := authPacket()
			if err := sign(&p, a, 0xfffffffe); err != nil {
				t.Fatal(err)
			}
			wire, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if want := HeaderLen + authHeaderLen + typ.digestLen(); len(wire) != want || int(wire[3]) != want || wire[1]&flagAuth == 0 {
				t.Fatalf("signed packet: %d bytes, Length %d, flags %#x; want %d bytes with the A bit", len(wire), wire[3], wire[1], want)
			}
			if bytes.Contains(wire, []byte("s3cret")) {
				t.Fatalf("the key is on the wire: %x", wire)
			}
			got, err := ParseReceived(wire, true)
			if err != nil {
				t.Fatal(err)
			}
			seq, err := verify(got, a)
			if err != nil || seq != 0xfffffffe {
				t.Fatalf("verify = %d, %v; want 0xfffffffe, nil", seq, err)
			}
			// Every way of getting it wrong is refused, with its reason.
			for _, tc := range []struct {
				name string
				auth Auth
				edit func([]byte)
				want error
			}{
				{"wrong key", Auth{Type: typ, KeyID: 5, Key: "guess"}, nil, ErrAuthDigest},
				{"key a prefix", Auth{Type: typ, KeyID: 5, Key: "s3cre"}, nil, ErrAuthDigest},
				{"other key ID", Auth{Type: typ, KeyID: 6, Key: "s3cret"}, nil, ErrAuthKeyID},
				{"other type", Auth{Type: otherType(typ), KeyID: 5, Key: "s3cret"}, nil, ErrAuthSection},
				{"state changed", a, func(b []byte) { b[1] = b[1]&0x3f | byte(Down)<<6 }, ErrAuthDigest},
				{"discriminator changed", a, func(b []byte) { b[11]++ }, ErrAuthDigest},
				{"sequence changed", a, func(b []byte) { b[HeaderLen+7]++ }, ErrAuthDigest},
				{"Auth Len changed", a, func(b []byte) { b[HeaderLen+1]-- }, ErrAuthSection},
			} {
				b := bytes.Clone(wire)
				if tc.edit != nil {
					tc.edit(b)
				}
				q, err := ParseReceived(b, true)
				if err == nil {
					_, err = verify(q, tc.auth)
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
				}
			}
			// Reserved is ignored on receipt, but covered by the digest as sent.
			b := bytes.Clone(wire)
			b[HeaderLen+3] = 0xaa
			q, _ := ParseReceived(b, true)
			if _, err := verify(q, a); !errors.Is(err, ErrAuthDigest) {
				t.Errorf("Reserved changed after signing: %v, want a digest mismatch", err)
			}
		})
	}
}

func otherType(t AuthType) AuthType {
	if t == AuthKeyedSHA1 {
		return AuthKeyedMD5
	}
	return AuthKeyedSHA1
}

// TestVerifyKnownAnswer pins the digest to a hand-computed value, so sign
// and verify cannot agree on a wrong layout (BIRD interop proves it too).
func TestVerifyKnownAnswer(t *testing.T) {
	// SHA1 over the header, then 04 1c 01 00, seq 1, and the key
	// "key" zero-padded to 20 bytes.
	p := authPacket()
	if err := sign(&p, Auth{Type: AuthKeyedSHA1, KeyID: 1, Key: "key"}, 1); err != nil {
		t.Fatal(err)
	}
	wire, _ := p.MarshalBinary()
	plain := append(bytes.Clone(wire[:HeaderLen]), 4, 28, 1, 0, 0, 0, 0, 1)
	plain = append(plain, append([]byte("key"), make([]byte, 17)...)...)
	h := AuthKeyedSHA1.newHash()
	h.Write(plain)
	if !bytes.Equal(wire[HeaderLen+authHeaderLen:], h.Sum(nil)) {
		t.Errorf("digest %x, want SHA1 of the packet with the padded key %x", wire[HeaderLen+authHeaderLen:], h.Sum(nil))
	}
}

func TestAuthSeqWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	forget := 2 * time.Second
	for _, tc := range []struct {
		name  string
		typ   AuthType
		steps []uint32
		ok    []bool
	}{
		{"keyed repeats and steps", AuthKeyedSHA1, []uint32{100, 100, 101, 110, 109, 119, 129}, []bool{true, true, true, true, false, true, false}},
		{"meticulous must advance", AuthMeticulousKeyedSHA1, []uint32{100, 100, 101, 110, 111}, []bool{true, false, true, true, true}},
		{"wraps around 2^32", AuthMeticulousKeyedMD5, []uint32{0xfffffffe, 0xffffffff, 0, 3}, []bool{true, true, true, true}},
		{"replay of an old packet", AuthKeyedMD5, []uint32{5000, 4999, 5000 + 1<<31}, []bool{true, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s authSeq
			for i, seq := range tc.steps {
				// Detect Mult 3: a window of 9 ahead.
				err := s.accept(seq, tc.typ, 3, t0.Add(time.Duration(i)*time.Millisecond), forget)
				if (err == nil) != tc.ok[i] {
					t.Errorf("step %d: seq %d: %v, want ok %v", i, seq, err, tc.ok[i])
				}
			}
		})
	}
	// After twice the detection time without packets, any number goes.
	var s authSeq
	_ = s.accept(100, AuthMeticulousKeyedSHA1, 3, t0, forget)
	if err := s.accept(5, AuthMeticulousKeyedSHA1, 3, t0.Add(forget/2), forget); err == nil {
		t.Errorf("a number far behind was taken before forget")
	}
	if err := s.accept(5, AuthMeticulousKeyedSHA1, 3, t0.Add(forget+time.Millisecond), forget); err != nil {
		t.Errorf("after forget: %v", err)
	}
}

func TestAuthValidate(t *testing.T) {
	for _, tc := range []struct {
		auth Auth
		msg  string
	}{
		{Auth{Type: AuthSimplePassword, Key: "x"}, "not supported"},
		{Auth{Type: AuthKeyedMD5}, "empty"},
		{Auth{Type: AuthKeyedMD5, Key: strings.Repeat("k", 17)}, "at most 16"},
		{Auth{Type: AuthKeyedSHA1, Key: strings.Repeat("k", 21)}, "at most 20"},
	} {
		if err := tc.auth.validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: %v, want %q", tc.auth.Type, err, tc.msg)
		}
	}
	if err := (Auth{Type: AuthKeyedSHA1, Key: strings.Repeat("k", 20)}).validate(); err != nil {
		t.Errorf("a 20-byte SHA1 key: %v", err)
	}
}

// TestManagersAuthenticate: two managers with the same key come up; with
// different keys (or one without auth) they stay down and count failures.
func TestManagersAuthenticate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   Auth
		wantUp bool
	}{
		{"same key", Auth{Type: AuthMeticulousKeyedSHA1, KeyID: 2, Key: "k1"}, Auth{Type: AuthMeticulousKeyedSHA1, KeyID: 2, Key: "k1"}, true},
		{"same key md5", Auth{Type: AuthKeyedMD5, KeyID: 2, Key: "k1"}, Auth{Type: AuthKeyedMD5, KeyID: 2, Key: "k1"}, true},
		{"other key", Auth{Type: AuthKeyedSHA1, KeyID: 2, Key: "k1"}, Auth{Type: AuthKeyedSHA1, KeyID: 2, Key: "k2"}, false},
		{"one side without", Auth{Type: AuthKeyedSHA1, KeyID: 2, Key: "k1"}, Auth{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := startPair(t)
			pa, pb := Peer{Local: lo1, Remote: lo2, Auth: tc.a}, Peer{Local: lo2, Remote: lo1, Auth: tc.b}
			a.set(pa)
			b.set(pb)
			if tc.wantUp {
				st := a.waitStatus(pa.withDefaults().Key(), "Up", isUp)
				if st.Counters.AuthFailures != 0 {
					t.Errorf("auth failures %d with the same key", st.Counters.AuthFailures)
				}
				return
			}
			st := a.waitStatus(pa.withDefaults().Key(), "counting auth failures", func(st SessionStatus) bool {
				return st.Counters.AuthFailures >= 2
			})
			if st.State == Up {
				t.Errorf("came up with %s", tc.name)
			}
		})
	}
}

// spoofDown sends one Down with Your Discriminator 0 from src to the
// manager's single-hop port, as an attacker on the path would.
func spoofDown(t *testing.T, src netip.Addr, dstPort uint16, myDiscr uint32, a Auth) {
	t.Helper()
	p := ControlPacket{Version: Version, State: Down, Diag: DiagControlDetectionTimeExpired, DetectMult: 3,
		MyDiscriminator: myDiscr, DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	if a.Enabled() {
		if err := sign(&p, a, 1); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo1, dstPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Single-hop needs TTL 255 to pass the RFC 5881 check.
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var optErr error
	if err := raw.Control(func(fd uintptr) { optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 255) }); err != nil || optErr != nil {
		t.Fatal(err, optErr)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestSpoofedDownLeavesSessionUp: a forged Down (Your Discriminator 0, a
// made-up My Discriminator) from the remote's address leaves an Up session
// Up, counted; with auth, so does one signed with the wrong key.
func TestSpoofedDownLeavesSessionUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		auth  Auth
		spoof Auth
		count func(Counters) uint64
	}{
		{"no auth", Auth{}, Auth{}, func(c Counters) uint64 { return c.IgnoredDown }},
		{"auth, spoof unsigned", Auth{Type: AuthKeyedSHA1, KeyID: 1, Key: "k"}, Auth{}, func(c Counters) uint64 { return c.AuthFailures }},
		{"auth, spoof with a wrong key", Auth{Type: AuthKeyedSHA1, KeyID: 1, Key: "k"}, Auth{Type: AuthKeyedSHA1, KeyID: 1, Key: "x"}, func(c Counters) uint64 { return c.AuthFailures }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := startPair(t)
			pa, pb := Peer{Local: lo1, Remote: lo2, Auth: tc.auth}, Peer{Local: lo2, Remote: lo1, Auth: tc.auth}
			a.set(pa)
			b.set(pb)
			key := pa.withDefaults().Key()
			st := a.waitStatus(key, "Up", isUp)
			before := tc.count(st.Counters)
			spoofDown(t, lo2, a.m.env.ports.listen[0], st.RemoteDiscriminator+1, tc.spoof)
			st = a.waitStatus(key, "counting the spoofed packet", func(st SessionStatus) bool { return tc.count(st.Counters) > before })
			time.Sleep(100 * time.Millisecond)
			for _, ev := range a.eventsSnapshot() {
				if ev.From == Up {
					t.Fatalf("session left Up after a spoofed Down: %+v", ev)
				}
			}
			if st := a.waitStatus(key, "Up", isUp); st.State != Up {
				t.Errorf("state %s", st.State)
			}
		})
	}
	// The check is exact: a Down from the remote's own discriminator still
	// takes the session down, as the RFC says.
	a, b := startPair(t)
	pa, pb := Peer{Local: lo1, Remote: lo2}, Peer{Local: lo2, Remote: lo1}
	a.set(pa)
	b.set(pb)
	st := a.waitStatus(pa.withDefaults().Key(), "Up", isUp)
	spoofDown(t, lo2, a.m.env.ports.listen[0], st.RemoteDiscriminator, Auth{})
	a.waitStatus(pa.withDefaults().Key(), "taken down by the remote's own Down", func(st SessionStatus) bool {
		return st.LastDownDiag == DiagNeighborSignaledDown
	})
}

// TestConfigAuthNumbers: the agent turns config's names into wire numbers
// with config.BFDAuthType.Number; they must be these types.
func TestConfigAuthNumbers(t *testing.T) {
	for name, want := range map[config.BFDAuthType]AuthType{
		config.BFDAuthNone:                AuthNone,
		config.BFDAuthKeyedMD5:            AuthKeyedMD5,
		config.BFDAuthMeticulousKeyedMD5:  AuthMeticulousKeyedMD5,
		config.BFDAuthKeyedSHA1:           AuthKeyedSHA1,
		config.BFDAuthMeticulousKeyedSHA1: AuthMeticulousKeyedSHA1,
	} {
		if got := AuthType(name.Number()); got != want {
			t.Errorf("%q is %s on the wire, want %s", name, got, want)
		}
		if got, ok := want.digestLen(), name.MaxKeyLen(); got != ok {
			t.Errorf("%q: config allows %d-byte keys, the wire carries %d", name, ok, got)
		}
	}
}
