package api

// XDPStatus is the XDP data plane of load balancers in mode dsr.
type XDPStatus struct {
	// Error, if set, is why the data plane does not work: its load
	// balancers are not announced.
	Error      string               `json:"error,omitempty"`
	Interfaces []XDPInterfaceStatus `json:"interfaces"`
	// Backends are the backends of dsr load balancers and where their
	// frames go.
	Backends []XDPBackendStatus `json:"backends"`
}

// XDPInterfaceStatus is an interface the XDP program should run on.
type XDPInterfaceStatus struct {
	Name  string `json:"name"`
	Mode  string `json:"mode"`            // native, generic, or "" when not attached
	Error string `json:"error,omitempty"` // why it is not attached
}

// XDPBackendStatus is a dsr backend's MAC as vipd resolved it.
type XDPBackendStatus struct {
	LoadBalancer string `json:"load_balancer"` // its name
	Backend      string `json:"backend"`       // ip:port
	MAC          string `json:"mac,omitempty"`
	Interface    string `json:"interface,omitempty"`
	// Problem is why the backend gets no traffic although healthy (its
	// MAC cannot be resolved, it is not on a LAN of this host).
	Problem string `json:"problem,omitempty"`
}
