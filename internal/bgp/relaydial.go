package bgp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/config"
)

// routerDialTimeout bounds one connection attempt to a router: GoBGP's
// (connect retry minus a second), so that an MD5 mismatch, which shows as
// a timeout, is reported as before.
const routerDialTimeout = connectRetry - time.Second

// sessionTTL is the TTL of the session's packets: ttl: N as given, 255
// with multihop, else 1 on eBGP (RFC 4271's single hop) and 0, the
// kernel's default, on iBGP, whose peers are commonly some hops away.
// GoBGP set a TTL on eBGP sessions only; the relay honours ttl and
// multihop on iBGP too.
func sessionTTL(p config.Peer, localASN uint32) int {
	switch {
	case p.TTL > 0:
		return int(p.TTL)
	case p.Multihop:
		return 255
	case p.ASN == localASN:
		return 0
	}
	return 1
}

// dialRouter opens the TCP connection to the router as GoBGP would have:
// from source_address if set, with the peer's TCP-MD5 password and TTL.
func dialRouter(ctx context.Context, p config.Peer, localASN uint32) (*net.TCPConn, error) {
	d := net.Dialer{
		Timeout:   routerDialTimeout,
		KeepAlive: -1, // BGP has its own keepalives
		Control:   socketOptions(p.Address, p.Password.Reveal(), sessionTTL(p, localASN)),
	}
	if p.SourceAddress.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: p.SourceAddress.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(p.Address, peerPort(p)).String())
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// dialGoBGP connects to GoBGP's internal listener from alias, the address
// GoBGP knows the peer by, signing with the relays' TCP-MD5 key.
func dialGoBGP(ctx context.Context, alias netip.Addr, listener netip.AddrPort, key string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: time.Second, KeepAlive: -1, LocalAddr: &net.TCPAddr{IP: alias.AsSlice()},
		Control: socketOptions(listener.Addr(), key, 0)}
	conn, err := d.DialContext(ctx, "tcp", listener.String())
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// socketOptions sets TCP-MD5 (RFC 2385) for peer and the TTL on the socket
// before it connects, so that the SYN already carries both.
func socketOptions(peer netip.Addr, password string, ttl int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			if password != "" {
				if opErr = setMD5(int(fd), peer, password); opErr != nil {
					return
				}
			}
			if ttl > 0 {
				opErr = setTTL(int(fd), peer.Is4(), ttl)
			}
		})
		if err != nil {
			return err
		}
		return opErr
	}
}

func setMD5(fd int, peer netip.Addr, password string) error {
	sig := unix.TCPMD5Sig{Keylen: uint16(len(password))}
	if len(password) > len(sig.Key) {
		return fmt.Errorf("tcp-md5: password longer than %d bytes", len(sig.Key))
	}
	copy(sig.Key[:], password)
	if peer.Is4() {
		sig.Addr.Family = unix.AF_INET
		a := peer.As4()
		copy(sig.Addr.Data[2:], a[:]) // after the port
	} else {
		sig.Addr.Family = unix.AF_INET6
		a := peer.As16()
		copy(sig.Addr.Data[6:], a[:]) // after the port and flow info
	}
	if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
		return fmt.Errorf("tcp-md5: %w", err)
	}
	return nil
}

func setTTL(fd int, v4 bool, ttl int) error {
	level, opt := unix.IPPROTO_IP, unix.IP_TTL
	if !v4 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	if err := unix.SetsockoptInt(fd, level, opt, ttl); err != nil {
		return fmt.Errorf("ttl %d: %w", ttl, err)
	}
	return nil
}

// firstDialGap is how long GoBGP's connect loop waited before its first
// attempt: 75-100 % of its minimum retry interval, 2 s.
func firstDialGap() time.Duration {
	return time.Duration((0.75 + 0.25*rand.Float64()) * float64(2*time.Second))
}

// retryGap is how long the relay waits after a failed attempt, with
// GoBGP's jitter (75-100 % of connectRetry).
func retryGap() time.Duration {
	return time.Duration((0.75 + 0.25*rand.Float64()) * float64(connectRetry))
}

// addrOf returns the IP address of a TCP endpoint.
func addrOf(a net.Addr) netip.Addr { return addrPortOf(a).Addr() }

// addrPortOf returns the address and port of a TCP endpoint.
func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
