// Package testnet builds network-namespace worlds for end-to-end tests and
// for the `vipd lab` demo: one LAN, real BGP routers (BIRD 2 or FRR) that
// install ECMP routes into their kernel FIB, nodes that run vipd, and a
// client.
//
// Layout of a world with prefix P:
//
//	namespace P-lan     bridge br0, one veth port per member (v<name>)
//	namespace P-<name>  one per router, node and client; its LAN interface
//	                    is LANInterface and carries both an IPv4 and an IPv6
//	                    address (nodad)
//
// No link is ever created in the host namespace, so link names need no
// prefix; namespaces, FRR's run directories and the temp dir carry P.
// Routers forward, hash multipath flows by L4 ports (each with its own
// seed where the kernel allows) and send no redirects. Nodes and the
// client route by default via the first router. FabricSpec (fabric.go)
// describes racks of nodes behind iBGP route reflectors, ToRs and a core
// router as such a spec.
//
// The API takes contexts and returns errors so the lab can use it; NewT in
// testing.go adapts it to tests. World.Close kills only the processes this
// world started and deletes only what it created.
//
// A world can outlive the program that built it (the lab's `up` exits and
// leaves it running): its processes run in their own sessions with their
// output in log files, and with Spec.Record set it keeps a record of what
// it made, which Load turns back into a World to inspect or Close. The
// record names each process by PID and start time, so a PID reused after
// the process ended is never signalled.
package testnet

import (
	"net/netip"
	"os"
	"time"
)

// LANInterface is the name of every member's interface on the LAN.
const LANInterface = "lan0"

// RouterKind selects the routing daemon of a router.
type RouterKind string

const (
	BIRD RouterKind = "bird" // BIRD 2: bird, queried with birdc
	FRR  RouterKind = "frr"  // FRR: zebra, bfdd and bgpd, queried with vtysh
)

// Spec describes a world. Zero fields take the defaults noted.
type Spec struct {
	Prefix string // unique name prefix; default "vt<pid>-<counter>"
	// Record, if set, is a file in which the world keeps its record (see
	// Load) up to date from the moment New starts, so that a program that
	// did not build the world, or outlived a crashed builder, can inspect
	// it and remove it. Close removes the file last.
	Record  string
	LAN4    netip.Prefix // default 10.255.255.0/24
	LAN6    netip.Prefix // default fd00:255::/64
	Routers []RouterSpec
	Nodes   []NodeSpec
	Client  *NodeSpec // nil: no client
	// Hosts are plain LAN members (load-balancer backends, servers): like
	// the client, they route by default via the first router.
	Hosts []NodeSpec
}

// RouterSpec describes one router. Its LAN IPv6 address is derived from
// Address: the same host part inside Spec.LAN6 (Spec.Addr6: 10.255.255.11
// becomes fd00:255::b).
type RouterSpec struct {
	Name    string // short: [a-z][a-z0-9]{0,11}
	Kind    RouterKind
	ASN     uint32
	Address netip.Addr // LAN IPv4 address; also the router id
	// PeerAddress, if valid, is put on the router's lo and used as the
	// source of every BGP session; nodes get a host route to it via
	// Address (Safespring's 169.254.169.254 style).
	PeerAddress netip.Addr
	Neighbors   []Neighbor
	// DefaultTimers keeps the daemon's own connect and error-wait timers
	// (BIRD: connect retry 120 s, error wait 60-300 s; FRR: connect retry
	// 120 s) instead of the 1 s ones tests use, to measure what operators
	// see.
	DefaultTimers bool
	// ExportHosts, if above 0, makes the router (BIRD only) originate that
	// many /32 routes from 100.64.0.0/10 and export them to every
	// neighbour: a router leaking a table to an announce-only speaker.
	ExportHosts int
}

// Neighbor is one BGP neighbour, seen from the speaker that configures it.
type Neighbor struct {
	Address  netip.Addr
	ASN      uint32
	Password string   // TCP-MD5; empty: none
	Multihop bool     // eBGP multihop, TTL 255
	BFD      *BFDSpec // nil: no BFD with this neighbour

	// The rest describe router-to-router sessions of fabrics (rack.go).

	// RRClient makes the router a route reflector for this iBGP
	// neighbour: BIRD `rr client`, FRR `route-reflector-client`.
	RRClient bool
	// Export sends the router's BGP routes to the neighbour. Without it
	// BIRD exports nothing; FRR sends every neighbour its best paths anyway.
	Export bool
	// AddPaths sends every path, not only the best (BIRD `add paths on`,
	// which also accepts them; FRR `addpath-tx-all-paths`, FRR accepts
	// them by default): a reflector towards its ToR, so the ToR sees every
	// node.
	AddPaths bool
	// NextHopSelf makes the router the next hop of what it exports (BIRD
	// `next hop self` and, for IPv6, `next hop address` of its LAN IPv6;
	// FRR `next-hop-self`): without it a router on a shared LAN passes on
	// the nodes' addresses (third-party next hop).
	NextHopSelf bool
}

// BFDSpec turns on BFD with a neighbour. The router runs the session on
// its own (a BIRD `protocol bfd` neighbor, an FRR bfdd peer), so it comes
// up without BGP, and BGP follows it (BIRD `bfd on`, FRR `neighbor X
// bfd`). Zero fields take the defaults noted.
type BFDSpec struct {
	// Multihop runs RFC 5883 from the router's PeerAddress (else its LAN
	// address); otherwise single-hop RFC 5881 on the LAN. It must equal
	// the neighbour's Multihop: BGP asks for BFD in its own mode.
	Multihop   bool
	MinTx      time.Duration // default 300ms; whole milliseconds
	MinRx      time.Duration // default 300ms; whole milliseconds
	Multiplier int           // default 3
	Graceful   bool          // BIRD only: `bfd graceful`, NREC's setting
	// Auth authenticates the sessions (BIRD only; RFC 5880 §6.7). BIRD
	// sets it per interface and for all multihop sessions, like timers.
	Auth *BFDAuth
}

// BFDAuth is a BIRD BFD authentication: Type in BIRD's words ("keyed
// sha1", "meticulous keyed md5"), the key's ID and the key.
type BFDAuth struct {
	Type  string
	KeyID int
	Key   string
}

// BFDSession is the state of a router's BFD session with one neighbour.
type BFDSession struct {
	Neighbor netip.Addr
	Multihop bool
	State    string    // Up, Down, Init or AdminDown
	Since    time.Time // of the last state change
	// TxInterval is the agreed interval between the router's packets and
	// DetectionTime how long it waits for the neighbour's; both are what
	// the router reports.
	TxInterval    time.Duration
	DetectionTime time.Duration
	// RemoteDiag is the neighbour's last diagnostic as FRR names it
	// ("ok", "administratively-down", ...); BIRD does not show it.
	RemoteDiag string
}

// BFDUp is the BFD state of an up session.
const BFDUp = "Up"

// NodeSpec describes a node or the client. Its LAN IPv6 address is derived
// like a router's.
type NodeSpec struct {
	Name    string // short: [a-z][a-z0-9]{0,11}
	Address netip.Addr
}

// RouteInfo is one BGP path a router holds for a prefix.
type RouteInfo struct {
	NextHop          netip.Addr // BGP NEXT_HOP (the global one for IPv6)
	FromPeer         netip.Addr // the neighbour it came from
	MED              uint32     // 0 when absent
	LocalPref        uint32     // as the router holds it: BIRD gives eBGP routes 100, FRR shows none (0)
	ASPath           []uint32   // AS_SET members are flattened in order
	Communities      []string   // "65535:0"; well-known names as numbers
	LargeCommunities []string   // "1:2:3"
	Best             bool
}

// Session is the state of a router's BGP session with one neighbour.
type Session struct {
	Neighbor netip.Addr
	State    string    // BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
	Since    time.Time // when it was established; zero unless State is Established
	Info     string    // the daemon's last error or reset reason, if any
}

// Established is the BGP FSM state of an up session.
const Established = "Established"

// ToolsRequired reports whether a test that finds a program missing
// should fail rather than skip: under CI (CI set in the environment) and
// when run as root, where `make test` installed everything, a suite that
// did not run must not pass.
func ToolsRequired() bool { return os.Getenv("CI") != "" || os.Geteuid() == 0 }
