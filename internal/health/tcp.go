package health

import (
	"context"
	"fmt"
	"net"
)

// tcpDialer is shared by every TCP checker; probes close at once, so TCP
// keep-alive probes would never be sent.
var tcpDialer = &net.Dialer{KeepAlive: -1}

// TCP passes when a TCP connection to Address (host:port) opens. The
// connection is closed at once. It has a value receiver, so TCP and *TCP are
// both Checkers.
type TCP struct {
	Address string
}

var _ Checker = TCP{}

// Check implements Checker.
func (t TCP) Check(ctx context.Context) error {
	conn, err := tcpDialer.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return fmt.Errorf("tcp check: %w", err) // err names the address
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("tcp %s: close: %w", t.Address, err)
	}
	return nil
}
