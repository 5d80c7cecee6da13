package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
)

func TestPrintStatusLoadBalancers(t *testing.T) {
	st := api.Status{Version: "v1", RouterID: "192.0.2.1", ASN: 65000, LoadBalancers: []api.LoadBalancer{{
		Name: "web", EIP: "2001:db8::1", Port: 80, Protocol: "tcp", Mode: "nat", Announced: true, Reason: "healthy backends",
		Backends: []api.LoadBalancerBackend{{State: "up"}, {State: "down"}, {State: "up"}},
	}}}
	var b strings.Builder
	printStatus(&b, st, time.Now())
	lines := strings.Split(b.String(), "\n")
	var header, row string
	for i, l := range lines {
		if strings.HasPrefix(l, "LOAD BALANCER") && i+1 < len(lines) {
			header, row = l, lines[i+1]
		}
	}
	if header == "" {
		t.Fatalf("no load-balancer table in:\n%s", b.String())
	}
	if got := strings.Fields(row); strings.Join(got, " ") != "web [2001:db8::1]:80 tcp nat 2/3 yes healthy backends" {
		t.Errorf("row %q", row)
	}

	b.Reset()
	st.LoadBalancers = nil
	printStatus(&b, st, time.Now())
	if strings.Contains(b.String(), "LOAD BALANCER") {
		t.Errorf("a table for no load balancers:\n%s", b.String())
	}
}

func TestPrintStatusKubernetes(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		k    *api.KubernetesStatus
		want string
	}{
		{nil, ""},
		{&api.KubernetesStatus{Node: "n1", Connected: true, Synced: true, Since: now.Add(-time.Minute), Allocator: "n2", Services: 3},
			"kubernetes: node n1, connected (1m0s), 3 services, allocator n2"},
		{&api.KubernetesStatus{Node: "n1", LastError: "connection refused", Since: now.Add(-2 * time.Second)},
			"kubernetes: node n1, API server unreachable (serving the last state known): connection refused, waiting for the first list (2s), 0 services, allocator -"},
		{&api.KubernetesStatus{Node: "n1", LastError: "connection refused", LocalCopy: true, Since: now.Add(-2 * time.Second), Services: 2},
			"kubernetes: node n1, API server unreachable (serving the last state known): connection refused, waiting for the first list (serving the copy saved before the restart) (2s), 2 services, allocator -"},
	} {
		var b strings.Builder
		printStatus(&b, api.Status{Kubernetes: tc.k}, now)
		got := ""
		for l := range strings.Lines(b.String()) {
			if strings.HasPrefix(l, "kubernetes:") {
				got = strings.TrimSpace(l)
			}
		}
		if got != tc.want {
			t.Errorf("kubernetes line %q, want %q", got, tc.want)
		}
	}
}

func TestPrintStatusCluster(t *testing.T) {
	now := time.Now()
	c := &api.ClusterStatus{Node: "n1", Connected: false, LastError: "context deadline exceeded", Since: now.Add(-3 * time.Second),
		Synced: true, Revision: 42, LoadBalancers: 5, Serving: 4, NameConflict: "another vipd (started 2026-12-06T10:00:00Z) runs with node name \"n1\"",
		Nodes: []api.ClusterNode{
			{Name: "n1", Version: "1.0", Health: "ok", Started: now.Add(-time.Hour), Announcing: []string{"api", "web"}},
			{Name: "n2", Version: "1.0", Health: "no BGP session established", Started: now.Add(-time.Minute), Announcing: []string{}},
		}}
	var b strings.Builder
	printStatus(&b, api.Status{Cluster: c}, now)
	out := b.String()
	for _, want := range []string{
		"cluster: node n1, etcd unreachable (serving the last state known, writes refused): context deadline exceeded (3s), revision 42, 5 load balancers (4 served here)",
		"n1    1.0      ok                          1h0m0s   api, web",
		"n2    1.0      no BGP session established  1m0s     -",
		"WARNING: another vipd (started 2026-12-06T10:00:00Z) runs with node name \"n1\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintStatusPeers(t *testing.T) {
	now := time.Now()
	st := api.Status{Peers: []api.PeerStatus{
		{Name: "r1", Address: "10.0.0.1", ASN: 65000, State: "Established", Since: now.Add(-time.Minute),
			Connection: &api.PeerConnection{Local: "10.0.0.2:179", Remote: "10.0.0.1:40000", OpenedBy: "router"}},
		{Name: "r2", Address: "10.0.0.3", ASN: 65000, State: "Established", Since: now.Add(-time.Minute),
			Connection: &api.PeerConnection{Local: "10.0.0.2:40001", Remote: "10.0.0.3:179", OpenedBy: "vipd"}},
	}}
	var b strings.Builder
	printStatus(&b, st, now)
	for _, want := range []string{
		"r1    10.0.0.1  65000  Established  1m0s   opened by the router, to 10.0.0.2:179",
		"r2    10.0.0.3  65000  Established  1m0s   -",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
