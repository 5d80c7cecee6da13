// Package api serves vipd's REST API on the control socket and is its client.
//
// The JSON shapes here are the stable contract of `vipd status --json` and
// GET /status: add fields, never rename or remove them.
package api

import "time"

// Status is the daemon's view of everything it does.
type Status struct {
	Version  string          `json:"version"`
	RouterID string          `json:"router_id"`
	ASN      uint32          `json:"asn"`
	Peers    []PeerStatus    `json:"peers"`
	BFD      []BFDStatus     `json:"bfd"`
	Services []ServiceStatus `json:"services"`
	VIPs     []VIPStatus     `json:"vips"`
	// LoadBalancers are the load balancers the API created.
	LoadBalancers []LoadBalancer `json:"load_balancers"`
	// HostSettings are the kernel parameters vipd set for nat-mode load
	// balancing (none until the first nat load balancer).
	HostSettings []HostSetting `json:"host_settings"`
	// XDP is the XDP data plane, once a load balancer in mode dsr existed.
	XDP *XDPStatus `json:"xdp,omitempty"`
	// Kubernetes is the Kubernetes source, if configured.
	Kubernetes *KubernetesStatus `json:"kubernetes,omitempty"`
	// Cluster is the cluster store, if configured.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is the cluster store as this node sees it (GET /cluster).
type ClusterStatus struct {
	Node      string    `json:"node"`      // this node's name
	Connected bool      `json:"connected"` // etcd answers with a quorum; if not, the last state known is served and writes get 503
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Synced    bool      `json:"synced"`   // the cache holds a full list
	Revision  int64     `json:"revision"` // the etcd revision this node has applied
	// NameConflict says another node runs with this node's name.
	NameConflict string `json:"name_conflict,omitempty"`
	// LoadBalancers counts the cluster's load balancers; Serving those
	// whose nodes selector picks this node.
	LoadBalancers int           `json:"load_balancers"`
	Serving       int           `json:"serving"`
	Nodes         []ClusterNode `json:"nodes"`
}

// ClusterNode is one member of the cluster, as it reports itself.
type ClusterNode struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Labels  map[string]string `json:"labels,omitempty"`
	Started time.Time         `json:"started"`
	Health  string            `json:"health"` // ok, or what keeps it from serving
	// Announcing names the load balancers whose address it announces.
	Announcing []string `json:"announcing"`
}

// KubernetesStatus is the Kubernetes source's health.
type KubernetesStatus struct {
	Node      string    `json:"node"`
	Connected bool      `json:"connected"` // the API server answers; if not, the last state known is served
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Synced    bool      `json:"synced"` // the caches hold a full list
	// LocalCopy says that, until the first list, this node serves the
	// copy of its Services it saved before it restarted.
	LocalCopy bool   `json:"local_copy"`
	Allocator string `json:"allocator"` // the node that assigns LoadBalancer addresses, "" if unknown
	Services  int    `json:"services"`  // Services with an address this node serves
}

// HostSetting is one kernel parameter the data plane needs.
type HostSetting struct {
	Name string `json:"name"` // as sysctl(8) names it
	Was  string `json:"was"`  // the value vipd found
	Now  string `json:"now"`  // the value it has now
}

// PeerStatus is one BGP session.
type PeerStatus struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	ASN       uint32    `json:"asn"`
	State     string    `json:"state"` // Idle, Connect, Active, OpenSent, OpenConfirm, Established
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// IPv6NextHop is the next hop sent with IPv6 routes; IPv6Problem says
	// why IPv6 routes are not sent to this peer, if they are not.
	IPv6NextHop string `json:"ipv6_next_hop,omitempty"`
	IPv6Problem string `json:"ipv6_problem,omitempty"`
	// ReceivedPrefixes counts the routes the peer sent in this session;
	// vipd discards them all: it is announced minus withdrawn prefixes of
	// the UPDATEs the relay discarded (a route sent twice counts twice),
	// and none is kept in memory.
	ReceivedPrefixes uint64 `json:"received_prefixes"`
	// DiscardedUpdates counts the peer's UPDATE messages the relay
	// discarded since the peer was configured.
	DiscardedUpdates uint64 `json:"discarded_updates"`
	// Connection is the TCP connection to the router while there is one.
	Connection *PeerConnection `json:"connection,omitempty"`
}

// PeerConnection is the TCP connection that carries a BGP session.
type PeerConnection struct {
	Local    string `json:"local"`     // address:port on this node
	Remote   string `json:"remote"`    // the router's address:port
	OpenedBy string `json:"opened_by"` // "vipd", or "router" (to listen_port)
}

// BFDStatus is one BFD session (RFC 5880).
type BFDStatus struct {
	Peer                string        `json:"peer"` // the BGP peer's name
	Remote              string        `json:"remote"`
	Local               string        `json:"local,omitempty"`
	Multihop            bool          `json:"multihop"`
	State               string        `json:"state"` // AdminDown, Down, Init, Up
	Since               time.Time     `json:"since,omitzero"`
	RemoteState         string        `json:"remote_state"`
	LocalDiscriminator  uint32        `json:"local_discriminator"`
	RemoteDiscriminator uint32        `json:"remote_discriminator"`
	TxInterval          time.Duration `json:"tx_interval_ns"` // agreed, before jitter
	RxInterval          time.Duration `json:"rx_interval_ns"`
	DetectionTime       time.Duration `json:"detection_time_ns"`
	LastDiag            string        `json:"last_diag"` // why it last went down
	RemoteDiag          string        `json:"remote_diag"`
	// Problem says why the session cannot come up, if it can be told:
	// its socket, or packets dropped (e.g. "TTL 64 < min_ttl 254").
	Problem string `json:"problem,omitempty"`
	// Auth is the authentication type ("" for none).
	Auth string `json:"auth,omitempty"`
	// AuthFailures counts packets dropped for failed authentication;
	// IgnoredDown counts Downs an unauthenticated session ignored as
	// spoofed (Your Discriminator 0 from a foreign discriminator).
	AuthFailures uint64 `json:"auth_failures"`
	IgnoredDown  uint64 `json:"ignored_down"`
}

// ServiceStatus is one service's health.
type ServiceStatus struct {
	Name       string    `json:"name"`
	State      string    `json:"state"` // up, down
	Since      time.Time `json:"since,omitzero"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	LastResult string    `json:"last_result,omitempty"` // pass, fail
	LastError  string    `json:"last_error,omitempty"`
	// FastRounds: its checks run at fast_interval (no decision yet, or
	// the last round disagrees with the state).
	FastRounds bool   `json:"fast_rounds,omitempty"`
	Reason     string `json:"reason,omitempty"`      // why it is announced the way it is, in words
	ReasonCode string `json:"reason_code,omitempty"` // the same as a stable code, e.g. checks_failing
}

// VIPStatus is one service address and what vipd does with it.
type VIPStatus struct {
	Prefix           string   `json:"prefix"`
	Service          string   `json:"service"`
	Bound            bool     `json:"bound"` // vipd holds the address on an interface
	Interface        string   `json:"interface,omitempty"`
	Announced        bool     `json:"announced"`   // offered to BGP
	Reason           string   `json:"reason"`      // why it is or isn't announced, in words
	ReasonCode       string   `json:"reason_code"` // the same as a stable code, e.g. drained
	MED              uint32   `json:"med"`
	Prepend          int      `json:"prepend"`
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	Peers            []string `json:"peers"` // names of peers whose Adj-RIB-Out holds it
}

// Error is the JSON body of every error reply.
type Error struct {
	Message string       `json:"error"`
	Field   string       `json:"field,omitempty"`
	Errors  []FieldError `json:"errors,omitempty"` // every problem of a rejected config
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Changed           bool     `json:"changed"` // false: the file's config equals the running one
	Hash              string   `json:"hash"`
	SessionsReset     bool     `json:"sessions_reset"`               // asn, router_id, listen_port or allowed_prefixes changed
	ServicesRestarted []string `json:"services_restarted,omitempty"` // health state starts over (new or changed checks)
	RestartRequired   []string `json:"restart_required,omitempty"`   // keys kept as they were until vipd restarts
}

// FieldError is one config problem in an error reply.
type FieldError struct {
	Field   string `json:"field"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// DrainResult is the reply to a drain or undrain.
type DrainResult struct {
	Service string `json:"service"`
	Drained bool   `json:"drained"`
}

// Health is the reply of GET /healthz.
type Health struct {
	Status string `json:"status"` // always "ok": the API answers
}

// LoadBalancer is a load balancer as the API shows it: its spec with the
// defaults filled in, its backends, and whether its address is announced.
type LoadBalancer struct {
	UUID       string                `json:"uuid"`
	Name       string                `json:"name"`
	EIP        string                `json:"eip"` // the address it holds
	Port       uint16                `json:"port"`
	Protocol   string                `json:"protocol"`
	Mode       string                `json:"mode"`
	Pool       string                `json:"pool"`
	Ports      []uint16              `json:"ports"`
	Masquerade bool                  `json:"masquerade"`
	OnEmpty    string                `json:"on_empty"`
	LocalPref  uint32                `json:"local_pref"` // to iBGP peers
	Check      *Check                `json:"check"`      // null: no backend checks
	Backends   []LoadBalancerBackend `json:"backends"`
	Announced  bool                  `json:"announced"`
	Reason     string                `json:"reason"` // why it is or isn't announced
	Created    time.Time             `json:"created"`
	// Nodes is its nodes selector ([]: every node of a cluster).
	Nodes []string `json:"nodes"`
	// PerNode is, in a cluster, each member's view: whether it announces
	// the address and how its own checks see the backends.
	PerNode []LoadBalancerNode `json:"per_node,omitempty"`
}

// LoadBalancerNode is one cluster member's view of a load balancer.
type LoadBalancerNode struct {
	Node      string            `json:"node"`
	Announced bool              `json:"announced"`
	Reason    string            `json:"reason,omitempty"`
	Backends  map[string]string `json:"backends"` // state by backend UUID
}

// LoadBalancerBackend is one backend of a load balancer.
type LoadBalancerBackend struct {
	UUID   string `json:"uuid"`
	IP     string `json:"ip"`
	Port   uint16 `json:"port"`
	Weight uint32 `json:"weight"`
	State  string `json:"state"` // up, down, pending
}

// Check is a load balancer's backend health check, in requests and
// replies. Durations are Go durations ("1s"); expect_status is "204" or
// "200-299". In a request, omitted fields (and zero rise or fall) take
// the defaults; a reply shows them filled in.
type Check struct {
	Type         string `json:"type"` // tcp or http
	Path         string `json:"path,omitempty"`
	ExpectStatus string `json:"expect_status,omitempty"`
	Interval     string `json:"interval,omitempty"`
	FastInterval string `json:"fast_interval,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
	Rise         int    `json:"rise,omitempty"`
	Fall         int    `json:"fall,omitempty"`
}

// LoadBalancerRequest is the body of POST /loadbalancer. Omitted fields
// take the defaults.
type LoadBalancerRequest struct {
	Name       string   `json:"name"`
	Port       uint16   `json:"port"`
	Protocol   string   `json:"protocol,omitempty"`
	Mode       string   `json:"mode,omitempty"`
	Pool       string   `json:"pool,omitempty"`
	Address    string   `json:"address,omitempty"`
	Check      *Check   `json:"check,omitempty"`
	Ports      []uint16 `json:"ports,omitempty"`
	Masquerade *bool    `json:"masquerade,omitempty"`
	OnEmpty    string   `json:"on_empty,omitempty"`
	LocalPref  *uint32  `json:"local_pref,omitempty"`
	Nodes      []string `json:"nodes,omitempty"`
}

// BackendRequest is the body of POST /loadbalancer/{uuid}/backend.
type BackendRequest struct {
	IP     string `json:"ip,omitempty"` // local mode: omit
	Port   uint16 `json:"port"`
	Weight uint32 `json:"weight,omitempty"` // default 1
}

// Deleted is the reply to DELETE /loadbalancer/{uuid}.
type Deleted struct {
	UUID    string `json:"uuid"`
	Deleted bool   `json:"deleted"`
}
