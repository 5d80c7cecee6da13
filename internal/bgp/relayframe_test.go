package bgp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// wire serializes a GoBGP message, as a router would send it.
func wire(t testing.TB, m *bgp.BGPMessage) []byte {
	t.Helper()
	b, err := m.Serialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return b
}

func nlris(t testing.TB, prefixes ...string) []bgp.PathNLRI {
	t.Helper()
	var out []bgp.PathNLRI
	for _, s := range prefixes {
		n, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix(s))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bgp.PathNLRI{NLRI: n})
	}
	return out
}

// update4 announces and withdraws IPv4 prefixes in plain NLRI fields.
func update4(t testing.TB, withdrawn, announced []string) []byte {
	t.Helper()
	var attrs []bgp.PathAttributeInterface
	if len(announced) > 0 {
		nh, err := bgp.NewPathAttributeNextHop(netip.MustParseAddr("192.0.2.1"))
		if err != nil {
			t.Fatal(err)
		}
		attrs = []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeAsPath(nil), nh}
	}
	return wire(t, bgp.NewBGPUpdateMessage(nlris(t, withdrawn...), attrs, nlris(t, announced...)))
}

// update6 announces and withdraws IPv6 prefixes in MP_(UN)REACH_NLRI.
func update6(t testing.TB, withdrawn, announced []string) []byte {
	t.Helper()
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeAsPath(nil)}
	if len(announced) > 0 {
		reach, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, nlris(t, announced...), netip.MustParseAddr("2001:db8::1"))
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, reach)
	}
	if len(withdrawn) > 0 {
		unreach, err := bgp.NewPathAttributeMpUnreachNLRI(bgp.RF_IPv6_UC, nlris(t, withdrawn...))
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, unreach)
	}
	return wire(t, bgp.NewBGPUpdateMessage(nil, attrs, nil))
}

func TestVerdict(t *testing.T) {
	big := update4(t, nil, []string{"100.64.0.1/32"})
	big = append(big, make([]byte, maxMessageLen)...) // trailing bytes parse as NLRI /0s
	binary.BigEndian.PutUint16(big[16:], uint16(len(big)))
	for _, tc := range []struct {
		name     string
		msg      []byte
		extended bool
		want     action
	}{
		{"IPv4 End-of-RIB", wire(t, bgp.NewEndOfRib(bgp.RF_IPv4_UC)), false, forward},
		{"IPv6 End-of-RIB", wire(t, bgp.NewEndOfRib(bgp.RF_IPv6_UC)), false, forward},
		{"IPv4 routes", update4(t, nil, []string{"100.64.0.1/32", "100.64.0.2/32"}), false, discard},
		{"IPv4 withdrawal", update4(t, []string{"100.64.0.1/32"}, nil), false, discard},
		{"IPv6 routes", update6(t, nil, []string{"2001:db8::1/128"}), false, discard},
		{"IPv6 withdrawal alone", update6(t, []string{"2001:db8::1/128"}, nil), false, discard},
		{"KEEPALIVE", keepaliveMessage, false, forward},
		{"NOTIFICATION", wire(t, bgp.NewBGPNotificationMessage(6, 2, nil)), false, forward},
		{"UPDATE too long without extended messages: GoBGP rejects it", big, false, forward},
		{"UPDATE long with extended messages", big, true, discard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verdict(tc.msg, tc.extended); got != tc.want {
				t.Errorf("verdict = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCountPrefixes(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want prefixCounts
	}{
		{"IPv4 announced", update4(t, nil, []string{"100.64.0.1/32", "100.64.0.2/32", "10.0.0.0/8"}), prefixCounts{announced: 3}},
		{"IPv4 withdrawn", update4(t, []string{"100.64.0.1/32", "0.0.0.0/0"}, nil), prefixCounts{withdrawn: 2}},
		{"IPv6 both", update6(t, []string{"2001:db8::2/128"}, []string{"2001:db8::1/128", "2001:db8::/32"}), prefixCounts{announced: 2, withdrawn: 1}},
		{"End-of-RIB", wire(t, bgp.NewEndOfRib(bgp.RF_IPv6_UC)), prefixCounts{}},
		{"truncated", update4(t, nil, []string{"100.64.0.1/32"})[:headerLen+3], prefixCounts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := countPrefixes(tc.msg[headerLen:]); got != tc.want {
				t.Errorf("countPrefixes = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRelayCountersNeverNegative(t *testing.T) {
	var c relayCounters
	c.add(prefixCounts{announced: 2})
	c.add(prefixCounts{withdrawn: 5})
	c.add(prefixCounts{withdrawn: 1, announced: 1})
	if got := c.prefixes.Load(); got != 1 {
		t.Errorf("prefixes = %d, want 1 (withdrawals below 0 are not owed)", got)
	}
	if got := c.updates.Load(); got != 3 {
		t.Errorf("updates = %d, want 3", got)
	}
}

func openMessage(t testing.TB, caps ...bgp.ParameterCapabilityInterface) []byte {
	t.Helper()
	caps = append(caps, bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(4200000000))
	m, err := bgp.NewBGPOpenMessage(23456, 9, netip.MustParseAddr("10.0.0.1"),
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		t.Fatal(err)
	}
	return wire(t, m)
}

func TestAdvertisesExtendedMessage(t *testing.T) {
	if !advertisesExtendedMessage(openMessage(t, bgp.NewCapRouteRefresh(), bgp.NewCapExtendedMessage())[headerLen:]) {
		t.Error("OPEN with the Extended Message capability: not seen")
	}
	if advertisesExtendedMessage(openMessage(t, bgp.NewCapRouteRefresh())[headerLen:]) {
		t.Error("OPEN without the Extended Message capability: seen")
	}
	// RFC 9072 extended optional parameters: 255, 255, a 2-octet length,
	// then parameters with 2-octet lengths.
	caps := []byte{capExtendedMessage, 0}
	body := []byte{4, 0x5b, 0xa0, 0, 9, 10, 0, 0, 1, 255, 255, 0, 3 + byte(len(caps)), paramCapabilities, 0, byte(len(caps))}
	if !advertisesExtendedMessage(append(body, caps...)) {
		t.Error("extended optional parameters with the capability: not seen")
	}
}

func TestReadMessage(t *testing.T) {
	msgs := [][]byte{openMessage(t), keepaliveMessage, update4(t, nil, []string{"100.64.0.1/32"})}
	in := bytes.NewReader(bytes.Join(msgs, nil))
	buf := make([]byte, maxExtendedLen)
	for i, want := range msgs {
		got, err := readMessage(in, buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %x, %v; want %x", i, got, err, want)
		}
	}
	bad := bytes.Clone(keepaliveMessage)
	bad[3] = 0
	if _, err := readMessage(bytes.NewReader(bad), buf); !errors.Is(err, errBadMarker) {
		t.Errorf("bad marker: %v, want errBadMarker", err)
	}
	bad = bytes.Clone(keepaliveMessage)
	bad[17] = 18
	if _, err := readMessage(bytes.NewReader(bad), buf); !errors.Is(err, errBadLength) {
		t.Errorf("length 18: %v, want errBadLength", err)
	}
}

// FuzzRelayFrame checks the relay's framing and UPDATE reading against
// GoBGP's parser: a message GoBGP parses as an UPDATE is an End-of-RIB
// for the relay exactly when it is for GoBGP, and has the prefix counts
// GoBGP finds (unicast families); and any message read back from a stream
// comes out as it went in.
func FuzzRelayFrame(f *testing.F) {
	f.Add(wire(f, bgp.NewEndOfRib(bgp.RF_IPv4_UC)))
	f.Add(wire(f, bgp.NewEndOfRib(bgp.RF_IPv6_UC)))
	f.Add(update4(f, []string{"100.64.0.9/32"}, []string{"100.64.0.1/32", "100.64.0.2/32"}))
	f.Add(update6(f, []string{"2001:db8::2/128"}, []string{"2001:db8::1/128"}))
	f.Add(openMessage(f, bgp.NewCapExtendedMessage()))
	f.Add(keepaliveMessage)
	f.Fuzz(func(t *testing.T, msg []byte) {
		n, err := frameLength(msg)
		if err != nil || n != len(msg) || n > maxExtendedLen {
			return
		}
		got, err := readMessage(bytes.NewReader(append(bytes.Clone(msg), keepaliveMessage...)), make([]byte, maxExtendedLen))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read back %x, %v; want %x", got, err, msg)
		}
		a := verdict(msg, true)
		if msg[18] == msgOpen {
			advertisesExtendedMessage(msg[headerLen:])
		}
		m, err := bgp.ParseBGPMessage(msg)
		if err != nil {
			return
		}
		if o, ok := m.Body.(*bgp.BGPOpen); ok {
			checkOpenIdentity(t, msg, o)
			return
		}
		if m.Header.Type != bgp.BGP_MSG_UPDATE {
			return
		}
		u := m.Body.(*bgp.BGPUpdate)
		eor, _ := u.IsEndOfRib()
		if (a == forward) != eor {
			t.Fatalf("verdict %v, GoBGP End-of-RIB %v: %x", a, eor, msg)
		}
		want, ok := gobgpCounts(u)
		if got := countPrefixes(msg[headerLen:]); ok && got != want {
			t.Fatalf("countPrefixes = %+v, GoBGP counts %+v: %x", got, want, msg)
		}
	})
}

// gobgpCounts counts what GoBGP parsed; ok is false when a family the
// relay does not count is in the UPDATE.
func gobgpCounts(u *bgp.BGPUpdate) (prefixCounts, bool) {
	c := prefixCounts{announced: len(u.NLRI), withdrawn: len(u.WithdrawnRoutes)}
	for _, a := range u.PathAttributes {
		switch v := a.(type) {
		case *bgp.PathAttributeMpReachNLRI:
			if !unicastSAFI(v.SAFI) {
				return c, false
			}
			c.announced += len(v.Value)
		case *bgp.PathAttributeMpUnreachNLRI:
			if !unicastSAFI(v.SAFI) {
				return c, false
			}
			c.withdrawn += len(v.Value)
		}
	}
	return c, true
}

// checkOpenIdentity compares openIdentity with GoBGP's parse of an OPEN.
func checkOpenIdentity(t *testing.T, msg []byte, o *bgp.BGPOpen) {
	id, asn, ok := openIdentity(msg[headerLen:])
	wantASN := uint32(o.MyAS)
	for _, p := range o.OptParams {
		c, isCap := p.(*bgp.OptionParameterCapability)
		if !isCap {
			continue
		}
		for _, v := range c.Capability {
			if four, is4 := v.(*bgp.CapFourOctetASNumber); is4 {
				wantASN = four.CapValue
				goto found
			}
		}
	}
found:
	want := o.ID.As4()
	if !ok || id != binary.BigEndian.Uint32(want[:]) || asn != wantASN {
		t.Fatalf("openIdentity = %d, %d, %v; GoBGP parsed ID %v, AS %d: %x", id, asn, ok, o.ID, wantASN, msg)
	}
}

func TestOpenIdentity(t *testing.T) {
	msg := routerOpen(t, "10.0.0.3")
	id, asn, ok := openIdentity(msg[headerLen:])
	if !ok || id != 0x0a000003 || asn != receiverASN {
		t.Errorf("openIdentity = %#x, %d, %v; want 0x0a000003, %d", id, asn, ok, receiverASN)
	}
	// A 4-octet AS in the capability wins over AS_TRANS in the header.
	id, asn, ok = openIdentity(openMessage(t)[headerLen:])
	if !ok || id != 0x0a000001 || asn != 4200000000 {
		t.Errorf("openIdentity = %#x, %d, %v; want 0x0a000001, 4200000000", id, asn, ok)
	}
	if _, _, ok := openIdentity(msg[headerLen : headerLen+5]); ok {
		t.Error("openIdentity of a truncated OPEN: ok")
	}
}
