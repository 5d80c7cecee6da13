package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Listen passes while a TCP socket listens on Port (and, if Address is set,
// on Address or on the wildcard address that covers it) in the network
// namespace vipd runs in. It asks the kernel through sock_diag instead of
// connecting: the server logs nothing, and no connection takes a place in its
// accept queue. It has a value receiver, so Listen and *Listen are both
// Checkers.
type Listen struct {
	Port    uint16
	Address netip.Addr // zero: any address
}

var _ Checker = Listen{}

// Kind implements Kinder.
func (Listen) Kind() string { return KindListen }

// Check implements Checker.
func (l Listen) Check(context.Context) error {
	// An IPv4 address can be served by a dual-stack IPv6 listener on "::",
	// so IPv4 looks at both families; IPv6 at its own only.
	families := []uint8{unix.AF_INET, unix.AF_INET6}
	if l.Address.Is6() && !l.Address.Is4In6() {
		families = families[1:]
	}
	for _, fam := range families {
		socks, err := listeners(fam)
		if err != nil {
			return fmt.Errorf("listen check: sock_diag: %w", err)
		}
		for _, s := range socks {
			if s.port == l.Port && l.covers(s) {
				return nil
			}
		}
	}
	if l.Address.IsValid() {
		return fmt.Errorf("listen check: nothing listens on %s", netip.AddrPortFrom(l.Address, l.Port))
	}
	return fmt.Errorf("listen check: nothing listens on TCP port %d", l.Port)
}

// covers reports whether a listener on s accepts connections to l.Address.
func (l Listen) covers(s listener) bool {
	want := l.Address.Unmap()
	switch {
	case !want.IsValid() || s.addr == want || s.addr.Unmap() == want:
		return true
	case s.addr.IsUnspecified() && s.addr.Is4() == want.Is4():
		return true
	default: // "::" without IPV6_V6ONLY also takes IPv4
		return s.addr.IsUnspecified() && s.addr.Is6() && want.Is4() && !s.v6only
	}
}

// listener is a listening socket as sock_diag reports it.
type listener struct {
	addr   netip.Addr
	port   uint16
	v6only bool
}

// Sizes and offsets of struct inet_diag_req_v2 and inet_diag_msg
// (linux/inet_diag.h).
const (
	diagReqLen   = 56
	diagMsgLen   = 72
	diagSkV6Only = 11 // INET_DIAG_SKV6ONLY
)

// diagRequest is an inet_diag_req_v2 that dumps one family's listening TCP
// sockets. netlink.SocketDiagTCP dumps sockets in every state, and a busy
// server has many more connections than listeners: asking the kernel for
// listeners only keeps a round cheap.
type diagRequest struct{ family uint8 }

func (r diagRequest) Len() int { return diagReqLen }

func (r diagRequest) Serialize() []byte {
	b := make([]byte, diagReqLen)
	b[0], b[1] = r.family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], 1<<unix.BPF_TCP_LISTEN)
	// The socket id (b[8:]) stays zero: a dump does not filter by it.
	return b
}

// listeners dumps the listening TCP sockets of family.
func listeners(family uint8) ([]listener, error) {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	req.AddData(diagRequest{family: family})
	msgs, err := req.Execute(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY)
	if err != nil {
		return nil, err
	}
	out := make([]listener, 0, len(msgs))
	for _, m := range msgs {
		if s, ok := parseDiagMsg(m); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseDiagMsg reads an inet_diag_msg: family, state, timer, retrans, then
// the socket id (source port and address in network order) at offset 4.
func parseDiagMsg(m []byte) (listener, bool) {
	if len(m) < diagMsgLen {
		return listener{}, false
	}
	s := listener{port: binary.BigEndian.Uint16(m[4:6])}
	switch m[0] {
	case unix.AF_INET:
		s.addr = netip.AddrFrom4([4]byte(m[8:12]))
	case unix.AF_INET6:
		s.addr = netip.AddrFrom16([16]byte(m[8:24]))
	default:
		return listener{}, false
	}
	attrs, err := nl.ParseRouteAttr(m[diagMsgLen:])
	if err == nil {
		for _, a := range attrs {
			if a.Attr.Type == diagSkV6Only && len(a.Value) > 0 {
				s.v6only = a.Value[0] != 0
			}
		}
	}
	return s, true
}
