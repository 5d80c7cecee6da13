// Package config loads, defaults and validates vipd's YAML configuration.
//
// Parse is pure: it turns bytes into a typed *Config or an *Errors listing
// every problem with its YAML field path and line. Load reads a file and
// resolves the files the config points at (password_file). Start, reload,
// check-config and the API all share these two functions.
package config

import (
	"log/slog"
	"net/netip"
	"time"
)

// Config is a parsed, defaulted and validated vipd configuration.
type Config struct {
	BGP      BGP
	Services []Service
	Pools    []Pool
	StateDir string // default /var/lib/vipd
	API      API
	Metrics  Metrics
	// DataPlane configures the XDP data plane (load balancers in mode dsr).
	DataPlane DataPlane
	// Kubernetes, if set, makes Services one more source of VIPs.
	Kubernetes *Kubernetes
	// Cluster, if set, keeps the load balancers in etcd, shared by every
	// node, instead of in state_dir.
	Cluster *Cluster
}

// BGP is the speaker's global configuration.
type BGP struct {
	ASN              uint32
	RouterID         netip.Addr // zero: chosen at run time (first global IPv4, never a VIP)
	ListenPort       int32      // -1 (default): only dial out
	AllowedPrefixes  []netip.Prefix
	Communities      []Community
	LargeCommunities []LargeCommunity
	ShutdownGrace    time.Duration
	GracefulRestart  bool // RFC 4724: a stopping vipd leaves its routes at the routers
	Peers            []Peer
}

// Family is an address family announced to a peer.
type Family string

const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Peer is one BGP neighbour.
type Peer struct {
	Name          string // default: the address
	Address       netip.Addr
	ASN           uint32
	Port          uint16 // default 179
	Password      Secret // from password or password_file
	PasswordFile  string
	Multihop      bool // eBGP multihop, TTL 255
	TTL           uint8
	SourceAddress netip.Addr    // zero: chosen by the kernel
	HoldTime      time.Duration // default 9s; 0 or >= 3s, whole seconds
	Families      []Family      // default: both
	IPv6NextHop   netip.Addr    // zero: the host's global IPv6 towards the peer
	BFD           BFD
}

// BFD is a peer's BFD configuration (RFC 5880).
type BFD struct {
	Enabled    bool
	Multihop   bool          // default: the peer's Multihop
	MinTx      time.Duration // default 300ms
	MinRx      time.Duration // default 300ms
	Multiplier uint8         // default 3
	MinTTL     uint8         // multihop only, default 1 (any TTL)
	Auth       BFDAuth       // zero Type: no authentication
}

// BFDAuth is a BFD session's authentication (RFC 5880 §6.7).
type BFDAuth struct {
	Type    BFDAuthType
	KeyID   uint8  // default 1, the ID BIRD gives its first password
	Key     Secret // from key or key_file
	KeyFile string
}

// BFDAuthType names a BFD authentication scheme.
type BFDAuthType string

// The schemes vipd supports: keyed MD5 and SHA1, plain and meticulous
// (a new sequence number in every packet). Simple Password is left out:
// it sends the key in clear.
const (
	BFDAuthNone                BFDAuthType = ""
	BFDAuthKeyedMD5            BFDAuthType = "keyed_md5"
	BFDAuthMeticulousKeyedMD5  BFDAuthType = "meticulous_keyed_md5"
	BFDAuthKeyedSHA1           BFDAuthType = "keyed_sha1"
	BFDAuthMeticulousKeyedSHA1 BFDAuthType = "meticulous_keyed_sha1"
)

// Number is the type's Auth Type number (RFC 5880 §4.1); 0 for none.
func (t BFDAuthType) Number() uint8 {
	switch t {
	case BFDAuthKeyedMD5:
		return 2
	case BFDAuthMeticulousKeyedMD5:
		return 3
	case BFDAuthKeyedSHA1:
		return 4
	case BFDAuthMeticulousKeyedSHA1:
		return 5
	}
	return 0
}

// MaxKeyLen is the longest key the scheme carries: 16 bytes for MD5, 20
// for SHA1 (RFC 5880 §4.3, §4.4).
func (t BFDAuthType) MaxKeyLen() int {
	switch t {
	case BFDAuthKeyedMD5, BFDAuthMeticulousKeyedMD5:
		return 16
	case BFDAuthKeyedSHA1, BFDAuthMeticulousKeyedSHA1:
		return 20
	}
	return 0
}

// DefaultLocalPref is the LOCAL_PREF of a service (or load balancer) that
// sets none, as on most routers.
const DefaultLocalPref = 100

// Internal reports whether p is an iBGP peer: one in the local AS.
func (b BGP) Internal(p Peer) bool { return p.ASN == b.ASN }

// OnDown says what a service does with its routes while its checks fail.
type OnDown string

const (
	OnDownWithdraw OnDown = "withdraw"
	OnDownDegrade  OnDown = "degrade"
)

// Service is a set of VIPs announced while their health checks pass.
type Service struct {
	Name      string
	VIPs      []netip.Addr
	Interface string // default "lo"
	Bind      bool   // default true
	Checks    []Check
	Interval  time.Duration // default 1s
	// FastInterval is the time between rounds until the first decision
	// and while a round disagrees with the state; default min(1s, Interval).
	FastInterval time.Duration
	Timeout      time.Duration // default min(1s, FastInterval)
	Rise         int           // default 2
	Fall         int           // default 2
	OnDown       OnDown        // default withdraw
	MED          uint32
	DownMED      uint32
	Prepend      int // sent to eBGP peers only
	DownPrepend  int
	// LocalPref is the LOCAL_PREF sent to iBGP peers (a peer whose ASN
	// is BGP.ASN); default DefaultLocalPref. DownLocalPref is the one of
	// on_down: degrade; default LocalPref.
	LocalPref        uint32
	DownLocalPref    uint32
	Communities      []Community // added to BGP.Communities
	LargeCommunities []LargeCommunity
	MaintenanceFile  string
	// Ports, if set, are the only TCP and UDP ports on which traffic to
	// the VIPs reaches this host; the rest is dropped.
	Ports []uint16
}

// Check is one health check; exactly one of its fields is set.
type Check struct {
	HTTP    *HTTPCheck
	TCP     *TCPCheck
	Exec    *ExecCheck
	Listen  *ListenCheck
	Process *ProcessCheck
}

// HTTPCheck passes when GET URL answers with a status in [StatusMin, StatusMax].
type HTTPCheck struct {
	URL       string
	StatusMin int // from expect_status "200-299" (default) or "204"
	StatusMax int
}

// TCPCheck passes when a TCP connection to Address opens.
type TCPCheck struct {
	Address string // host:port
}

// ExecCheck passes when Command exits 0.
type ExecCheck struct {
	Command []string
}

// ListenCheck passes while a TCP socket listens on Port (and Address, if
// set), as the kernel's sock_diag reports it.
type ListenCheck struct {
	Port    uint16
	Address netip.Addr // zero: any address
}

// ProcessCheck passes while a process runs: the one whose PID is in
// PIDFile, or else the oldest one whose name (/proc/PID/comm) is Name.
// Exactly one of the two is set.
type ProcessCheck struct {
	PIDFile string
	Name    string
}

// Pool is a set of prefixes the API hands addresses out of.
type Pool struct {
	Name     string
	Prefixes []netip.Prefix
}

// Kubernetes configures the Kubernetes source: Services' external IPs
// and LoadBalancer addresses, announced while Kubernetes says they serve.
type Kubernetes struct {
	Kubeconfig string // "": in-cluster credentials
	NodeName   string // "": $NODE_NAME, else the host name
	Namespace  string // where the allocator's Lease lives; "": $POD_NAMESPACE, else "vipd"
	// ExternalIPs and LoadBalancers choose what is served; both default true.
	ExternalIPs   bool
	LoadBalancers bool
	// LoadBalancerClass, if set, is the only class served; unset, Services
	// with no class and with DefaultLoadBalancerClass are.
	LoadBalancerClass string
	Interface         string        // default lo
	LeaseDuration     time.Duration // default 15s
}

// Cluster configures the cluster store: the load balancers, their
// backends, address allocations and drains live in etcd, and every node
// serves them. What is node-local (the addresses this node added, the
// lock) stays in state_dir.
type Cluster struct {
	NodeName string            // default: the host name
	Labels   map[string]string // what a load balancer's nodes selector matches, besides the name
	// MemberTTL is how long this node's membership outlives its last
	// contact with etcd (an etcd lease); default 10s.
	MemberTTL time.Duration
	Etcd      Etcd
}

// Etcd is how to reach the etcd cluster.
type Etcd struct {
	Endpoints []string // client URLs, http:// or https://
	Prefix    string   // every key lives under it; default /vipd
	CAFile    string   // verify the servers with this CA (https); default: the system's
	CertFile  string   // client certificate (both or neither)
	KeyFile   string
	Username  string
	// PasswordFile holds the user's password; Load reads it into Password.
	PasswordFile string
	Password     Secret
}

// DefaultLoadBalancerClass is the spec.loadBalancerClass vipd serves
// (besides none) when kubernetes.load_balancer_class is unset.
const DefaultLoadBalancerClass = "vipd.io/bgp"

// API configures the control socket and optional TCP listener.
type API struct {
	Socket    string // default /run/vipd/vipd.sock
	Listen    string // optional host:port
	TokenFile string // required with Listen
	TLSCert   string // optional: serve Listen with TLS (both or neither)
	TLSKey    string
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	Listen string // default 127.0.0.1:9477; "" disables
}

// Community is an RFC 1997 community, written "high:low".
type Community uint32

// LargeCommunity is an RFC 8092 large community, written "global:local1:local2".
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}

// Secret holds a password. It never prints, logs or marshals its value.
type Secret string

func (Secret) String() string               { return "<redacted>" }
func (Secret) GoString() string             { return `"<redacted>"` }
func (Secret) LogValue() slog.Value         { return slog.StringValue("<redacted>") }
func (Secret) MarshalText() ([]byte, error) { return []byte("<redacted>"), nil }

// Reveal returns the secret's value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }
