// Package xdp is vipd's XDP data plane: load balancers in mode dsr, served
// by an XDP program with L2 direct server return.
//
// # Packet path
//
// The program (bpf/dsr.c) runs on the interfaces that receive VIP traffic
// from the routers. For a TCP or UDP packet to a load balancer's address
// and port, in a frame addressed to the interface's own MAC, it picks a
// backend from the load balancer's Maglev table, rewrites the frame's
// destination MAC to the backend's and its source MAC to the interface's,
// and transmits it again on the LAN (XDP_TX, or a redirect when the
// backend sits behind another of the interfaces). IP headers are not
// touched: the backend holds the load balancer's address itself (on lo,
// not answering ARP for it) and answers the client directly. Everything
// else passes to the kernel: other addresses and ports, fragments, ICMP,
// IPv6 with extension headers, VLAN-tagged frames and anything too short
// to parse.
//
// # Agreement between nodes, and no per-flow state
//
// The program keeps no state per flow. The slot is flowHash(client
// address, client port) mod maglev.LargeTableSize, the table depends only
// on the backends' addresses, ports and weights, so every node picks the
// same backend for a flow, and a connection that the routers move to
// another node (a node joins or leaves the ECMP set) keeps its backend.
// What moves a connection is a change of the table itself: a backend that
// leaves takes about 1/N of the slots with it.
//
// # Maps and atomic updates
//
//	lbs       hash: (address, port, protocol, family) -> load balancer id
//	tables    array of maps, by id: the load balancer's Maglev table, an
//	          array of 65,537 slots {backend MAC, egress ifindex}
//	ifaces    hash: ifindex -> the interface's own MAC
//	counters  per-CPU array, by id: packets and bytes forwarded
//
// A change of a load balancer's backends builds a new inner table and
// swaps it into tables with one update, so the program sees the old table
// or the new one. A new load balancer gets its table before its lbs key,
// a removed one loses its key first. The MAC sits in every slot (12 bytes
// a slot, 0.8 MB a load balancer) rather than in a separate backend table
// that the slots index: a backend whose MAC changes is then a new table
// too, and one swap covers everything the program reads.
//
// Nothing is pinned: the objects live in the process (vipd must work under
// `ip netns exec`, where /sys/fs/bpf is not mounted), and the program is
// attached through bpf_links that the kernel detaches when vipd exits, even
// after a crash.
package xdp

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vipd/vipd/internal/lb"
)

// LoadBalancer is one load balancer in mode dsr as the XDP data plane
// sees it.
type LoadBalancer struct {
	ID       string // stable and unique (the UUID)
	Address  netip.Addr
	Port     uint16
	Protocol lb.Protocol
	// Backends are the healthy backends with a resolved MAC. With none,
	// the load balancer's packets are dropped.
	Backends []Backend
}

// Backend is where a load balancer sends flows.
type Backend struct {
	// Addr keys the backend in the Maglev table, as on every node.
	Addr   netip.AddrPort
	Weight uint32
	// MAC and Ifindex say where frames for it go: its MAC on the LAN
	// behind interface Ifindex, which must be one the program runs on.
	MAC     net.HardwareAddr
	Ifindex int
}

// State is everything the XDP data plane should hold.
type State struct {
	// Interfaces are the names of the interfaces the program runs on.
	// With none, the program is detached everywhere.
	Interfaces    []string
	LoadBalancers []LoadBalancer
}

// AttachMode is how the program is attached to an interface.
type AttachMode string

const (
	// Native runs the program in the driver, before any socket buffer
	// is allocated.
	Native AttachMode = "native"
	// Generic runs it in the kernel's generic hook (after the driver
	// built a socket buffer): same behaviour, lower throughput.
	Generic AttachMode = "generic"
)

// InterfaceStatus is one interface the program should run on.
type InterfaceStatus struct {
	Name  string
	Mode  AttachMode // "" while not attached
	Error string     // why it is not attached
}

// Counter is a load balancer's forwarded packets and bytes, over all CPUs.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// TableSize is the number of slots of every Maglev table; bpf/dsr.c's
// TABLE_SIZE must agree.
const TableSize = 65537

// maxLoadBalancers is bpf/dsr.c's MAX_LBS.
const maxLoadBalancers = 1024

// maxInterfaces is bpf/dsr.c's MAX_IFACES.
const maxInterfaces = 64

func (l LoadBalancer) validate() error {
	switch {
	case l.ID == "":
		return fmt.Errorf("load balancer: no id")
	case !l.Address.IsValid() || l.Address.Zone() != "":
		return fmt.Errorf("load balancer %s: bad address %v", l.ID, l.Address)
	case l.Port == 0:
		return fmt.Errorf("load balancer %s: no port", l.ID)
	case l.Protocol != lb.TCP && l.Protocol != lb.UDP:
		return fmt.Errorf("load balancer %s: protocol %q, want tcp or udp", l.ID, l.Protocol)
	}
	for _, b := range l.Backends {
		if len(b.MAC) != 6 {
			return fmt.Errorf("load balancer %s: backend %s: MAC %q is not Ethernet", l.ID, b.Addr, b.MAC)
		}
		if b.Ifindex <= 0 {
			return fmt.Errorf("load balancer %s: backend %s: no interface", l.ID, b.Addr)
		}
	}
	return nil
}
