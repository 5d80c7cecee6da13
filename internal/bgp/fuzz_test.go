package bgp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

// FuzzGuard checks the guard's promise: whatever it admits is a host route
// inside an allowed prefix, and a host route inside one is admitted.
func FuzzGuard(f *testing.F) {
	f.Add([]byte{192, 0, 2, 16}, uint8(32), []byte{192, 0, 2, 16}, uint8(31))
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(128), []byte{0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(127))
	f.Add([]byte{10, 0, 0, 1}, uint8(24), []byte{10, 0, 0, 0}, uint8(8))
	f.Fuzz(func(t *testing.T, addr []byte, bits uint8, allowedAddr []byte, allowedBits uint8) {
		a, ok1 := netip.AddrFromSlice(addr)
		b, ok2 := netip.AddrFromSlice(allowedAddr)
		if !ok1 || !ok2 {
			return
		}
		p := netip.PrefixFrom(a, int(bits))
		allowed := netip.PrefixFrom(b, int(allowedBits))
		err := guard([]netip.Prefix{allowed}, p)
		host := p.IsValid() && !a.Is4In6() && p.Bits() == a.BitLen()
		inside := allowed.IsValid() && allowed.Contains(a)
		if (err == nil) != (host && inside) {
			t.Fatalf("guard(%v, %v) = %v; host route %v, inside %v", allowed, p, err, host, inside)
		}
	})
}

// FuzzPathAttributes checks that the attributes built for any route encode
// and decode back to the same values.
func FuzzPathAttributes(f *testing.F) {
	f.Add(uint32(100), uint8(2), []byte{0xfc, 0x14, 0, 0x64}, []byte{0xfa, 0x56, 0xea, 0, 0, 0, 0, 1, 0, 0, 0, 2}, true)
	f.Add(uint32(0), uint8(0), []byte{}, []byte{}, false)
	f.Fuzz(func(t *testing.T, med uint32, prepend uint8, comms, large []byte, v6 bool) {
		r := Route{Prefix: vip4, MED: med, Prepend: int(prepend)}
		if v6 {
			r.Prefix = vip6
		}
		for c := range slices.Chunk(comms, 4) {
			if len(c) == 4 {
				r.Communities = append(r.Communities, config.Community(binary.BigEndian.Uint32(c)))
			}
		}
		for c := range slices.Chunk(large, 12) {
			if len(c) == 12 {
				r.LargeCommunities = append(r.LargeCommunities, config.LargeCommunity{
					Global: binary.BigEndian.Uint32(c), Local1: binary.BigEndian.Uint32(c[4:]), Local2: binary.BigEndian.Uint32(c[8:])})
			}
		}
		p, err := announcePath(admitted{route: r})
		if err != nil {
			t.Fatal(err)
		}
		var decoded []bgp.PathAttributeInterface
		for _, a := range p.Attrs {
			wire, err := a.Serialize()
			if err != nil {
				t.Fatalf("serialize %v: %v", a, err)
			}
			d, err := bgp.GetPathAttribute(wire)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.DecodeFromBytes(wire); err != nil {
				t.Fatalf("decode %v: %v", a, err)
			}
			decoded = append(decoded, d)
		}
		want := pathSummary(p)
		if got := pathSummary(&apiutil.Path{Attrs: decoded}); got != want {
			t.Fatalf("round trip:\n got %s\nwant %s", got, want)
		}
	})
}
