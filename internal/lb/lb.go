// Package lb is the load-balancer model: load balancers, their backends and
// the address pools they draw from.
//
// It holds no sockets and runs no goroutines. The API turns request bodies
// into a Spec or BackendSpec; Validate says what is wrong with them, naming
// the JSON field; a Registry hands out UUIDs and addresses and keeps every
// load balancer consistent with the pools. The agent persists the result and
// programs the kernel from it.
package lb

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/config"
)

// Protocol is the transport a load balancer forwards.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Mode says where a load balancer sends traffic.
type Mode string

const (
	// ModeNAT DNATs to remote backends (masquerading by default, so the
	// backends need no route back to the clients).
	ModeNAT Mode = "nat"
	// ModeLocal DNATs the address's port to a port on this host.
	ModeLocal Mode = "local"
	// ModeDSR forwards frames unchanged but for their destination MAC to
	// backends on this host's LAN (XDP, direct server return): backends
	// hold the address themselves and answer the clients directly.
	ModeDSR Mode = "dsr"
)

// OnEmpty says what happens to the address while no backend is healthy.
type OnEmpty string

const (
	OnEmptyWithdraw OnEmpty = "withdraw" // default: stop announcing the address
	OnEmptyAnnounce OnEmpty = "announce" // keep it announced (traffic is dropped here)
)

// CheckType is the kind of a backend health check.
type CheckType string

const (
	CheckTCP  CheckType = "tcp"  // a TCP connection to the backend opens
	CheckHTTP CheckType = "http" // GET http://backend/Path answers in ExpectStatus
)

// Check is a health check run against each backend of a load balancer.
type Check struct {
	Type      CheckType
	Path      string // http only; default "/"
	StatusMin int    // http only; default 200-299
	StatusMax int
	Interval  time.Duration // default 1s
	// FastInterval is the interval while the backend's state is unknown
	// or changing (as services' fast_interval); default min(1s, Interval).
	FastInterval time.Duration
	Timeout      time.Duration // default min(1s, FastInterval)
	Rise         int           // default 2
	Fall         int           // default 2
}

// Spec is what a client asks for when it creates a load balancer. Zero
// fields take the defaults noted.
type Spec struct {
	Name     string
	Port     uint16
	Protocol Protocol // default tcp
	Mode     Mode     // default nat
	Pool     string   // default: the only pool, or the one holding Address
	Address  netip.Addr
	Check    *Check // nil: every backend is used at once
	// Ports, if set, are the only ports (besides Port) on which traffic
	// to the address reaches this host; the rest is dropped.
	Ports      []uint16
	Masquerade *bool // nat mode; default true
	OnEmpty    OnEmpty
	// LocalPref is the LOCAL_PREF its address carries to iBGP peers;
	// default config.DefaultLocalPref.
	LocalPref *uint32
	// Nodes limits, in a cluster, which nodes serve it: each entry is a
	// node name or a label as key=value, and a node that matches any of
	// them serves it. Empty: every node.
	Nodes []string
}

// Selects reports whether a node with name and labels serves the load
// balancer.
func (s Spec) Selects(name string, labels map[string]string) bool {
	if len(s.Nodes) == 0 {
		return true
	}
	for _, n := range s.Nodes {
		if key, value, isLabel := strings.Cut(n, "="); isLabel {
			if v, ok := labels[key]; ok && v == value {
				return true
			}
		} else if n == name {
			return true
		}
	}
	return false
}

// LocalPrefOrDefault is LocalPref, or the default for a load balancer
// stored before it had one.
func (s Spec) LocalPrefOrDefault() uint32 {
	if s.LocalPref == nil {
		return config.DefaultLocalPref
	}
	return *s.LocalPref
}

// BackendSpec is what a client asks for when it adds a backend.
type BackendSpec struct {
	IP     netip.Addr // local mode: omit, or the load balancer's address
	Port   uint16
	Weight uint32 // default 1
}

// LoadBalancer is a created load balancer, as persisted.
type LoadBalancer struct {
	UUID     string
	Spec     Spec // defaulted; Spec.Address is the address it holds
	Backends []Backend
	Created  time.Time
}

// Address is the address the load balancer holds (its "eip").
func (l LoadBalancer) Address() netip.Addr { return l.Spec.Address }

// Backend is one backend of a load balancer.
type Backend struct {
	UUID   string
	IP     netip.Addr
	Port   uint16
	Weight uint32
}

// AddrPort is where traffic for the backend goes.
func (b Backend) AddrPort() netip.AddrPort { return netip.AddrPortFrom(b.IP, b.Port) }

// Key identifies a backend the same way on every node: its address and
// port, never its node-local UUID. Maglev permutations are keyed on it.
func (b Backend) Key() string { return b.AddrPort().String() }

// BackendState is a backend's health as the data plane sees it.
type BackendState string

const (
	BackendUp      BackendState = "up"      // in the Maglev table
	BackendDown    BackendState = "down"    // failing its check; out of the table
	BackendPending BackendState = "pending" // no check result yet, or not yet in the table
)

// FieldError is a problem with one field of a request body. Field is the
// JSON path ("check.interval", "backends[1].port").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
