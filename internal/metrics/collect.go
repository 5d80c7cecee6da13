package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The descriptions of the series Collect builds from a Snapshot and from the
// config state.
var (
	peerLabels = []string{"peer", "address"}

	descPeerUp = prometheus.NewDesc("vipd_bgp_session_up",
		"1 if the BGP session with the peer is Established, else 0.", peerLabels, nil)
	descPeerStateChanges = prometheus.NewDesc("vipd_bgp_session_state_changes_total",
		"BGP session state changes since the peer was configured.", peerLabels, nil)
	descPeerUpdatesSent = prometheus.NewDesc("vipd_bgp_updates_sent_total",
		"BGP UPDATE messages sent to the peer since it was configured.", peerLabels, nil)
	descPeerAnnounced = prometheus.NewDesc("vipd_bgp_announced_prefixes",
		"Prefixes announced to the peer (in its Adj-RIB-Out).", peerLabels, nil)
	descPeerReceived = prometheus.NewDesc("vipd_bgp_received_prefixes",
		"Prefixes the peer sent in this session, all discarded: announced minus withdrawn in the UPDATEs the relay discarded, none kept in memory.", peerLabels, nil)
	descPeerDiscarded = prometheus.NewDesc("vipd_bgp_discarded_updates_total",
		"UPDATE messages from the peer the relay discarded unread by GoBGP since the peer was configured.", peerLabels, nil)

	descBFDState = prometheus.NewDesc("vipd_bfd_session_state",
		"BFD session state as RFC 5880 numbers it: 0 AdminDown, 1 Down, 2 Init, 3 Up; -1 unknown.",
		[]string{"peer"}, nil)
	descBFDDiscarded = prometheus.NewDesc("vipd_bfd_packets_discarded_total",
		"BFD packets discarded as forged: reason auth (failed authentication) or spoofed_down (a Down with Your Discriminator 0 from a foreign discriminator, ignored while Up).",
		[]string{"peer", "reason"}, nil)

	serviceLabels      = []string{"service"}
	descServiceUp      = prometheus.NewDesc("vipd_service_up", "1 if the service's health checks pass, else 0.", serviceLabels, nil)
	descServiceDrained = prometheus.NewDesc("vipd_service_drained",
		"1 if the service is drained (by the operator or a maintenance file), else 0.", serviceLabels, nil)
	descServiceReason = prometheus.NewDesc("vipd_service_reason",
		"Always 1; the reason label says why the service is announced the way it is (checks_passing, checks_failing, degraded, drained, maintenance, no_checks, conflict).",
		[]string{"service", "reason"}, nil)
	descServiceTransitions = prometheus.NewDesc("vipd_service_transitions_total",
		"Up/down transitions of the service since its checks started.", serviceLabels, nil)
	descServiceCheckFailures = prometheus.NewDesc("vipd_service_check_failures_total",
		"Failed check rounds of the service (a check failed or timed out) since its checks started.", serviceLabels, nil)

	descLBAnnounced = prometheus.NewDesc("vipd_lb_announced",
		"1 if the load balancer's address is announced, else 0.", []string{"lb"}, nil)
	descLBBackendUp = prometheus.NewDesc("vipd_lb_backend_up",
		"1 if the backend is in the load balancer's Maglev table (healthy), else 0.", []string{"lb", "backend"}, nil)

	descKubeConnected = prometheus.NewDesc("vipd_kubernetes_connected",
		"1 if the Kubernetes API server answers, else 0 (vipd then serves the last state it knew).", nil, nil)
	descKubeSynced = prometheus.NewDesc("vipd_kubernetes_synced",
		"1 once the Kubernetes caches hold a full list; until then no Service is served.", nil, nil)
	descKubeAllocator = prometheus.NewDesc("vipd_kubernetes_allocator",
		"1 if this node holds the allocator's Lease and assigns LoadBalancer addresses, else 0.", nil, nil)
	descKubeServices = prometheus.NewDesc("vipd_kubernetes_services",
		"Kubernetes Services with an address this node serves (announced or not).", nil, nil)

	descClusterConnected = prometheus.NewDesc("vipd_cluster_connected",
		"1 if etcd answers with a quorum, else 0 (vipd then serves the last state it knew and refuses writes with 503).", nil, nil)
	descClusterSynced = prometheus.NewDesc("vipd_cluster_synced",
		"1 once the cluster store's cache holds a full list.", nil, nil)
	descClusterMembers = prometheus.NewDesc("vipd_cluster_members",
		"Nodes with a live membership key in the cluster store.", nil, nil)
	descClusterNameConflict = prometheus.NewDesc("vipd_cluster_name_conflict",
		"1 while another vipd writes this node's membership key: two nodes share one cluster.node_name.", nil, nil)
	descClusterLBs = prometheus.NewDesc("vipd_cluster_load_balancers",
		"Load balancers in the cluster store, by whether this node serves them (serving: true, false).", []string{"serving"}, nil)

	descConfigHash = prometheus.NewDesc("vipd_config_hash_info",
		"Always 1; the hash label identifies the running config.", []string{"hash"}, nil)
	descConfigLastSuccess = prometheus.NewDesc("vipd_config_last_reload_success_timestamp_seconds",
		"Unix time of the last successful config load or reload.", nil, nil)
	descConfigLastOK = prometheus.NewDesc("vipd_config_last_reload_successful",
		"1 if the last config load or reload succeeded, 0 if it failed.", nil, nil)

	descBuildInfo = prometheus.NewDesc("vipd_build_info",
		"Always 1; the labels describe the running binary.", []string{"version", "goversion", "revision"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descPeerUp, descPeerStateChanges, descPeerUpdatesSent, descPeerAnnounced, descPeerReceived, descPeerDiscarded,
		descBFDState, descBFDDiscarded,
		descServiceUp, descServiceDrained, descServiceReason, descServiceTransitions, descServiceCheckFailures,
		descLBAnnounced, descLBBackendUp,
		descKubeConnected, descKubeSynced, descKubeAllocator, descKubeServices,
		descClusterConnected, descClusterSynced, descClusterMembers, descClusterNameConflict, descClusterLBs,
		descConfigHash, descConfigLastSuccess, descConfigLastOK,
		descBuildInfo,
	} {
		ch <- d
	}
	m.checkDuration.Describe(ch)
	m.clusterWrites.Describe(ch)
	m.reloads.Describe(ch)
}

// Collect implements prometheus.Collector: it reads a snapshot from the
// source and emits everything.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	var snap Snapshot
	if m.src != nil {
		snap = m.src.MetricsSnapshot()
	}
	collectPeers(ch, snap.Peers)
	collectBFD(ch, snap.BFD)
	collectServices(ch, snap.Services)
	collectLoadBalancers(ch, snap.LoadBalancers)
	collectXDP(ch, snap)
	collectKubernetes(ch, snap.Kubernetes)
	collectCluster(ch, snap.Cluster)
	m.forgetChecksExcept(snap)
	m.checkDuration.Collect(ch)
	m.clusterWrites.Collect(ch)
	m.reloads.Collect(ch)
	m.collectConfig(ch)
	ch <- m.build
}

func collectPeers(ch chan<- prometheus.Metric, peers []Peer) {
	for _, p := range peers {
		ch <- constMetric(descPeerUp, prometheus.GaugeValue, boolValue(p.Up), p.Name, p.Address)
		ch <- constMetric(descPeerStateChanges, prometheus.CounterValue, float64(p.StateChanges), p.Name, p.Address)
		ch <- constMetric(descPeerUpdatesSent, prometheus.CounterValue, float64(p.UpdatesSent), p.Name, p.Address)
		ch <- constMetric(descPeerAnnounced, prometheus.GaugeValue, float64(p.Announced), p.Name, p.Address)
		ch <- constMetric(descPeerReceived, prometheus.GaugeValue, float64(p.Received), p.Name, p.Address)
		ch <- constMetric(descPeerDiscarded, prometheus.CounterValue, float64(p.DiscardedUpdates), p.Name, p.Address)
	}
}

func collectBFD(ch chan<- prometheus.Metric, sessions []BFDSession) {
	for _, s := range sessions {
		ch <- constMetric(descBFDState, prometheus.GaugeValue, BFDStateValue(s.State), s.Peer)
		ch <- constMetric(descBFDDiscarded, prometheus.CounterValue, float64(s.AuthFailures), s.Peer, "auth")
		ch <- constMetric(descBFDDiscarded, prometheus.CounterValue, float64(s.IgnoredDown), s.Peer, "spoofed_down")
	}
}

func collectServices(ch chan<- prometheus.Metric, services []Service) {
	for _, s := range services {
		ch <- constMetric(descServiceUp, prometheus.GaugeValue, boolValue(s.Up), s.Name)
		ch <- constMetric(descServiceDrained, prometheus.GaugeValue, boolValue(s.Drained), s.Name)
		if s.Reason != "" {
			ch <- constMetric(descServiceReason, prometheus.GaugeValue, 1, s.Name, s.Reason)
		}
		ch <- constMetric(descServiceTransitions, prometheus.CounterValue, float64(s.Transitions), s.Name)
		ch <- constMetric(descServiceCheckFailures, prometheus.CounterValue, float64(s.CheckFailures), s.Name)
	}
}

func collectLoadBalancers(ch chan<- prometheus.Metric, lbs []LoadBalancer) {
	for _, l := range lbs {
		ch <- constMetric(descLBAnnounced, prometheus.GaugeValue, boolValue(l.Announced), l.Name)
		for _, b := range l.Backends {
			ch <- constMetric(descLBBackendUp, prometheus.GaugeValue, boolValue(b.Up), l.Name, b.Address)
		}
	}
}

func collectKubernetes(ch chan<- prometheus.Metric, k *Kubernetes) {
	if k == nil {
		return
	}
	ch <- constMetric(descKubeConnected, prometheus.GaugeValue, boolValue(k.Connected))
	ch <- constMetric(descKubeSynced, prometheus.GaugeValue, boolValue(k.Synced))
	ch <- constMetric(descKubeAllocator, prometheus.GaugeValue, boolValue(k.Allocator))
	ch <- constMetric(descKubeServices, prometheus.GaugeValue, float64(k.Services))
}

func collectCluster(ch chan<- prometheus.Metric, c *Cluster) {
	if c == nil {
		return
	}
	ch <- constMetric(descClusterConnected, prometheus.GaugeValue, boolValue(c.Connected))
	ch <- constMetric(descClusterSynced, prometheus.GaugeValue, boolValue(c.Synced))
	ch <- constMetric(descClusterMembers, prometheus.GaugeValue, float64(c.Members))
	ch <- constMetric(descClusterNameConflict, prometheus.GaugeValue, boolValue(c.NameConflict))
	ch <- constMetric(descClusterLBs, prometheus.GaugeValue, float64(c.Serving), "true")
	ch <- constMetric(descClusterLBs, prometheus.GaugeValue, float64(c.LoadBalancers-c.Serving), "false")
}

// forgetChecksExcept drops the check-duration series of services and
// backends that are gone, so that their histograms go away like their
// other series.
func (m *Metrics) forgetChecksExcept(snap Snapshot) {
	keep := make(map[string]bool, len(snap.Services))
	for _, s := range snap.Services {
		keep[s.Name] = true
	}
	for _, l := range snap.LoadBalancers {
		for _, b := range l.Backends {
			keep[b.CheckSeries] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.observed {
		if !keep[name] {
			m.checkDuration.DeletePartialMatch(prometheus.Labels{"service": name})
			delete(m.observed, name)
		}
	}
}

func (m *Metrics) collectConfig(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	c := m.config
	m.mu.Unlock()
	if !c.loaded {
		return
	}
	ch <- constMetric(descConfigHash, prometheus.GaugeValue, 1, c.hash)
	ch <- constMetric(descConfigLastSuccess, prometheus.GaugeValue, float64(c.lastSuccess.UnixNano())/1e9)
	ch <- constMetric(descConfigLastOK, prometheus.GaugeValue, boolValue(c.lastOK))
}

// BFDStateValue maps a BFD state name to vipd_bfd_session_state's value:
// RFC 5880's numbers (0 AdminDown, 1 Down, 2 Init, 3 Up), or -1 for a name
// it does not know. Case and the separators "-", "_" and " " are ignored.
func BFDStateValue(state string) float64 {
	name := strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(state))
	switch name {
	case "admindown":
		return 0
	case "down":
		return 1
	case "init":
		return 2
	case "up":
		return 3
	}
	return -1
}

// constMetric is prometheus.MustNewConstMetric without the panic: a bad
// label value (invalid UTF-8) fails that series in the scrape, not vipd.
func constMetric(desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, vt, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
