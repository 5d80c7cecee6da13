package bfd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	singleHopPort = 3784 // RFC 5881 §4
	multihopPort  = 4784 // RFC 5883 §5
	// Source ports come from the dynamic range (RFC 5881 §4), one per
	// session.
	minSourcePort = 49152
	maxSourcePort = 65535
	// sourcePortTries bounds the search for a free source port.
	sourcePortTries = 64

	maxTTL = 255  // sent on every packet; single-hop receivers require it
	tosCS6 = 0xc0 // DSCP CS6 (network control), as TOS / traffic class

	maxPacket = 512 // read buffer; a Control packet is at most 255 bytes
	oobSize   = 128 // room for TTL and PKTINFO control messages
)

// ports are the UDP ports a manager listens on and sends to, by mode.
// Tests that run two managers on one host swap them; vipd uses the RFC's.
type ports struct {
	listen [2]uint16 // [single-hop, multihop]
	peer   [2]uint16
}

var rfcPorts = ports{
	listen: [2]uint16{singleHopPort, multihopPort},
	peer:   [2]uint16{singleHopPort, multihopPort},
}

func hopIndex(multihop bool) int {
	if multihop {
		return 1
	}
	return 0
}

// listenerKey names one receive socket: a family and a mode.
type listenerKey struct {
	v6       bool
	multihop bool
}

func (k listenerKey) network() string {
	if k.v6 {
		return "udp6"
	}
	return "udp4"
}

func (k listenerKey) String() string {
	hop := "single-hop"
	if k.multihop {
		hop = "multihop"
	}
	return k.network() + " " + hop
}

func keyFor(remote netip.Addr, multihop bool) listenerKey {
	return listenerKey{v6: !remote.Is4(), multihop: multihop}
}

// received is one datagram as a listener read it.
type received struct {
	payload  []byte // valid until the next read
	src, dst netip.Addr
	ttl      int // received TTL or hop limit; -1 when the kernel did not say
	multihop bool
}

// inNamespace runs fn where sockets must be made. The default runs it in
// place; tests make sockets inside a network namespace.
type inNamespace func(fn func() error) error

func inPlace(fn func() error) error { return fn() }

// sockopt sets one socket option on a raw descriptor.
type sockopt struct {
	level, name, value int
}

// listenUDP opens a UDP socket bound to address with opts set before bind.
func listenUDP(ns inNamespace, network, address string, opts []sockopt) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var optErr error
		err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if optErr = unix.SetsockoptInt(int(fd), o.level, o.name, o.value); optErr != nil {
					optErr = fmt.Errorf("setsockopt %d/%d: %w", o.level, o.name, optErr)
					return
				}
			}
		})
		return errors.Join(err, optErr)
	}}
	var conn net.PacketConn
	err := ns(func() error {
		var err error
		conn, err = lc.ListenPacket(context.Background(), network, address)
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn.(*net.UDPConn), nil
}

// openListener opens the receive socket for k on port, asking the kernel
// for each packet's TTL and destination address.
func openListener(ns inNamespace, k listenerKey, port uint16) (*net.UDPConn, error) {
	opts := []sockopt{
		{unix.IPPROTO_IP, unix.IP_RECVTTL, 1},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
	}
	address := fmt.Sprintf("0.0.0.0:%d", port)
	if k.v6 {
		opts = []sockopt{
			{unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1},
			{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1},
		}
		address = fmt.Sprintf("[::]:%d", port) // udp6 sockets are IPv6-only
	}
	conn, err := listenUDP(ns, k.network(), address, opts)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", k, err)
	}
	return conn, nil
}

// readPacket reads one datagram with its TTL and destination address.
func readPacket(conn *net.UDPConn, buf, oob []byte, multihop bool) (received, error) {
	n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return received{}, err
	}
	in := received{payload: buf[:n], src: from.Addr().Unmap(), ttl: -1, multihop: multihop}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return in, nil // no TTL: the TTL check drops it
	}
	for _, m := range msgs {
		readControl(&in, m)
	}
	return in, nil
}

// readControl takes the TTL (hop limit) and destination address from one
// control message.
func readControl(in *received, m unix.SocketControlMessage) {
	h, data := m.Header, m.Data
	switch {
	case (h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL ||
		h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT) && len(data) >= 4:
		in.ttl = int(binary.NativeEndian.Uint32(data))
	case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= 12:
		// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
		in.dst = netip.AddrFrom4([4]byte(data[8:12]))
	case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= 16:
		// struct in6_pktinfo { in6_addr addr; int ifindex; }
		in.dst = netip.AddrFrom16([16]byte(data[:16])).Unmap()
	}
}

// ttlProblem says why a packet with the received ttl must be dropped for
// peer (RFC 5881 §5, RFC 5883 §2), or "" if it passes.
func ttlProblem(peer Peer, ttl int) string {
	switch {
	case ttl < 0:
		return "no TTL reported by the kernel"
	case !peer.Multihop && ttl != maxTTL:
		return fmt.Sprintf("TTL %d != 255 (single-hop)", ttl)
	case peer.Multihop && ttl < int(peer.MinTTL):
		return fmt.Sprintf("TTL %d < min_ttl %d", ttl, peer.MinTTL)
	}
	return ""
}

// sourceAddress is the address the kernel would send from towards remote:
// connecting a UDP socket picks it without sending anything.
func sourceAddress(ns inNamespace, remote netip.Addr, port uint16) (netip.Addr, error) {
	var local netip.Addr
	err := ns(func() error {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, port)))
		if err != nil {
			return err
		}
		defer conn.Close()
		local = conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		return nil
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("source address towards %s: %w", remote, err)
	}
	return local, nil
}

// openSender binds a session's send socket to local and a source port
// that reserve grants (no other session holds it), with TTL 255 and DSCP
// CS6. A port reserved for a failed bind goes back through release.
func openSender(ns inNamespace, local netip.Addr, reserve func(uint16) bool, release func(uint16)) (*net.UDPConn, uint16, error) {
	network := "udp4"
	opts := []sockopt{{unix.IPPROTO_IP, unix.IP_TTL, maxTTL}, {unix.IPPROTO_IP, unix.IP_TOS, tosCS6}}
	if !local.Is4() {
		network = "udp6"
		opts = []sockopt{{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, maxTTL}, {unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tosCS6}}
	}
	lastErr := errors.New("every port tried is held by another session")
	for range sourcePortTries {
		port := uint16(minSourcePort + rand.IntN(maxSourcePort-minSourcePort+1))
		if !reserve(port) {
			continue
		}
		conn, err := listenUDP(ns, network, netip.AddrPortFrom(local, port).String(), opts)
		if err == nil {
			return conn, port, nil
		}
		release(port)
		lastErr = err
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return nil, 0, fmt.Errorf("bind %s to a port in %d-%d: %w", local, minSourcePort, maxSourcePort, lastErr)
}
