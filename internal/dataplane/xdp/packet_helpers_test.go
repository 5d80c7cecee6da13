package xdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// Frames for the program, built by hand: the program reads only the
// Ethernet header, the IP header and the ports, so checksums are left 0.

var (
	nodeMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	client4  = netip.MustParseAddr("192.0.2.10")
	client6  = netip.MustParseAddr("2001:db8:c::10")
)

// loIndex is the ingress interface of the test runs: the kernel wants a
// real one, and lo always exists. Nothing is sent: a test run only
// returns the verdict and the rewritten frame.
const loIndex = 1

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// xdpMD is the kernel's struct xdp_md, the test run's context.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

func ethernet(dst net.HardwareAddr, ethType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], otherMAC)
	binary.BigEndian.PutUint16(b[12:], ethType)
	return append(b, payload...)
}

// l4 is a TCP (20 bytes) or UDP (8 bytes) header with the ports and a
// few bytes of payload.
func l4(proto uint8, sport, dport uint16) []byte {
	n := 8
	if proto == 6 {
		n = 20
	}
	b := make([]byte, n, n+4)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return append(b, "data"...)
}

// ipv4 is an IPv4 header (with options when ihl > 5) and payload.
func ipv4(src, dst netip.Addr, proto uint8, ihl int, fragOff uint16, payload []byte) []byte {
	b := make([]byte, ihl*4, ihl*4+len(payload))
	b[0] = 4<<4 | byte(ihl)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)+len(payload)))
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, payload...)
}

func ipv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

func tcp4(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	return ethernet(nodeMAC, 0x0800, ipv4(src, dst, 6, 5, 0, l4(6, sport, dport)))
}

func udp4(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	return ethernet(nodeMAC, 0x0800, ipv4(src, dst, 17, 5, 0, l4(17, sport, dport)))
}

func tcp6(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	return ethernet(nodeMAC, 0x86dd, ipv6(src, dst, 6, l4(6, sport, dport)))
}

func udp6(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	return ethernet(nodeMAC, 0x86dd, ipv6(src, dst, 17, l4(17, sport, dport)))
}

// newTestPlane loads the program with lo as its one interface, or skips
// the test where BPF needs privileges it lacks.
func newTestPlane(t testing.TB) *Plane {
	t.Helper()
	if os.Geteuid() != 0 {
		worldtest.SkipOrFail(t, "xdp: loading BPF programs needs root")
	}
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.setIfaceMAC(loIndex, nodeMAC); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs the program once on frame and returns its verdict and the
// frame as it left.
func run(t testing.TB, p *Plane, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := p.objs.VipdDsr.Run(&ebpf.RunOptions{
		Data: frame, DataOut: out,
		Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: loIndex},
	})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, out[:len(frame)]
}

// backendMAC is the MAC the tests give backend i.
func backendMAC(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0xbe, 0, 0, 0, byte(i + 1)} }

// backendsAt makes n backends at prefix.1, .2, … on port, on lo.
func backendsAt(base netip.Addr, port uint16, n int) []Backend {
	out := make([]Backend, n)
	a := base
	for i := range out {
		a = a.Next()
		out[i] = Backend{Addr: netip.AddrPortFrom(a, port), Weight: 1, MAC: backendMAC(i), Ifindex: loIndex}
	}
	return out
}

// wantBackend is the MAC the Go side of the Maglev table and hash say a
// flow goes to.
func wantBackend(backends []Backend, src netip.Addr, sport uint16) net.HardwareAddr {
	slots := tableSlots(backends)
	s := slots[Slot(src, sport)]
	return net.HardwareAddr(s.MAC[:])
}

// onlyMACsChanged reports whether out is in with the destination MAC
// dst and the source MAC nodeMAC.
func onlyMACsChanged(in, out []byte, dst net.HardwareAddr) bool {
	return bytes.Equal(out[0:6], dst) && bytes.Equal(out[6:12], nodeMAC) && bytes.Equal(out[12:], in[12:])
}
