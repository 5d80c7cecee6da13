package e2e

import (
	"crypto/sha1"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/testnet"
)

// TestBFDSpoofedDown: one forged BFD Down from the router's own address
// (TTL 255, Your Discriminator 0: what RFC 5880 would act on) must not
// take vipd's session down nor reset BGP. Without authentication vipd
// ignores it as spoofed; with keyed SHA1 against BIRD, neither an
// unauthenticated Down nor one signed with the wrong key gets through.
func TestBFDSpoofedDown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		auth     *testnet.BFDAuth
		vipdAuth string
		spoofKey string // "" sends it unauthenticated
		counter  func(api.BFDStatus) uint64
	}{
		{"no auth", nil, "", "", func(s api.BFDStatus) uint64 { return s.IgnoredDown }},
		{"keyed sha1, spoof unsigned", &testnet.BFDAuth{Type: "keyed sha1", KeyID: 3, Key: "bfd-s3cret"},
			"{type: keyed_sha1, key_id: 3, key: bfd-s3cret}", "", func(s api.BFDStatus) uint64 { return s.AuthFailures }},
		{"meticulous keyed md5, spoof unsigned", &testnet.BFDAuth{Type: "meticulous keyed md5", KeyID: 9, Key: "md5-key"},
			"{type: meticulous_keyed_md5, key_id: 9, key: md5-key}", "", func(s api.BFDStatus) uint64 { return s.AuthFailures }},
		{"meticulous keyed sha1, spoof with a wrong key", &testnet.BFDAuth{Type: "meticulous keyed sha1", KeyID: 3, Key: "bfd-s3cret"},
			"{type: meticulous_keyed_sha1, key_id: 3, key: bfd-s3cret}", "guess", func(s api.BFDStatus) uint64 { return s.AuthFailures }},
	} {
		t.Run(tc.name, func(t *testing.T) { testBFDSpoofedDown(t, tc.auth, tc.vipdAuth, tc.spoofKey, tc.counter) })
	}
}

func testBFDSpoofedDown(t *testing.T, auth *testnet.BFDAuth, vipdAuth, spoofKey string, counter func(api.BFDStatus) uint64) {
	w := bfdWorld(t, testnet.BIRD, 1, testnet.BFDSpec{Auth: auth})
	r, n1 := w.Router("r1"), w.Node("n1")
	authLine := ""
	if vipdAuth != "" {
		authLine = ", auth: " + vipdAuth
	}
	startVipd(t, n1, bfdNodeConfig(r, false, "{enabled: true"+authLine+"}"))
	waitFIB(t, r, vip4, n1.Addr4())
	if _, err := r.WaitBFD(t.Context(), n1.Addr4(), false, testnet.BFDUp, convergeTimeout); err != nil {
		t.Fatalf("router BFD with n1 (BIRD authenticating with %+v): %v", auth, err)
	}
	st := waitStatus(t, n1, "BFD Up", func(st api.Status) bool { return len(st.BFD) == 1 && st.BFD[0].State == "Up" })
	before := st.BFD[0]
	if before.AuthFailures != 0 {
		t.Errorf("auth failures %d against BIRD with the same key", before.AuthFailures)
	}
	bgpSince := establishedSince(t, r, n1)

	// Forge the Down on the router: its LAN address, TTL 255, to vipd's
	// single-hop port.
	p := bfd.ControlPacket{Version: bfd.Version, State: bfd.Down, Diag: bfd.DiagControlDetectionTimeExpired,
		DetectMult: 3, MyDiscriminator: before.RemoteDiscriminator ^ 0x5a5a5a5a,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	if spoofKey != "" {
		signSHA1(t, &p, uint8(auth.KeyID), spoofKey)
	}
	sendFrom(t, &r.Host, netip.AddrPortFrom(r.Addr4(), 0), netip.AddrPortFrom(n1.Addr4(), 3784), &p)

	after := waitStatus(t, n1, "the forged packet counted", func(st api.Status) bool {
		return len(st.BFD) == 1 && counter(st.BFD[0]) > counter(before)
	}).BFD[0]
	time.Sleep(2 * time.Second) // a reset would be under way by now
	after = status(t, n1).BFD[0]
	if after.State != "Up" || !after.Since.Equal(before.Since) {
		t.Errorf("vipd's BFD session after the forged Down: %s since %v, want Up since %v", after.State, after.Since, before.Since)
	}
	if again := establishedSince(t, r, n1); !sameSession(again, bgpSince) {
		t.Errorf("BGP session reset by a forged BFD Down: established %v, then %v", bgpSince, again)
	}
	if s, _, err := r.BFDSession(t.Context(), n1.Addr4(), false); err != nil || s.State != testnet.BFDUp {
		t.Errorf("router's BFD session after the forged Down: %+v, %v", s, err)
	}
}

// signSHA1 adds a keyed SHA1 Authentication Section (RFC 5880 §6.7.4) to
// p, written out here rather than taken from package bfd, so the test
// does not trust the code it tests.
func signSHA1(t *testing.T, p *bfd.ControlPacket, keyID uint8, key string) {
	t.Helper()
	sec := make([]byte, 28)
	sec[0], sec[1], sec[2] = 4, 28, keyID
	binary.BigEndian.PutUint32(sec[4:], 1000)
	copy(sec[8:], key)
	p.AuthBit, p.Auth = true, sec
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(b)
	copy(p.Auth[8:], sum[:])
}

// sendFrom sends p once from src inside h's namespace, with TTL 255.
func sendFrom(t *testing.T, h *testnet.Host, src, dst netip.AddrPort, p *bfd.ControlPacket) {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	err = h.InNamespace(func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var optErr error
		if err := raw.Control(func(fd uintptr) { optErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 255) }); err != nil {
			return err
		}
		if optErr != nil {
			return optErr
		}
		_, err = c.Write(b)
		return err
	})
	if err != nil {
		t.Fatalf("send the forged packet from %s: %v", h.Name(), err)
	}
}
