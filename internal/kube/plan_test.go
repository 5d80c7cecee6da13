package kube

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlan(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}
	p := policy{externalIPs: true, loadBalancers: true, allowed: allowed}
	local := corev1.ServiceExternalTrafficPolicyLocal
	for _, tc := range []struct {
		name     string
		node     *corev1.Node
		policy   *policy
		services []*corev1.Service
		slices   []*discoveryv1.EndpointSlice
		want     []Service
	}{
		{
			name:     "external IPs, cluster policy, an endpoint elsewhere",
			services: []*corev1.Service{svc("web", ext("192.0.2.1", "2001:db8::1"))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n2", true, nil, false))},
			want:     []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1", "2001:db8::1"), Announce: true, Reason: ReasonServing, Detail: "serving endpoints: 1"}},
		},
		{
			name:     "no serving endpoint anywhere",
			services: []*corev1.Service{svc("web", ext("192.0.2.1"))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", false, nil, false))},
			want:     []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Reason: ReasonNoEndpoint, Detail: "no endpoint of ns/web is serving"}},
		},
		{
			name:     "local policy, endpoint on another node",
			services: []*corev1.Service{svc("web", ext("192.0.2.1"), etp(local))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n2", true, nil, false))},
			want: []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Reason: ReasonNoLocalEndpoint,
				Detail: "externalTrafficPolicy Local, and no endpoint of ns/web on node n1 is serving"}},
		},
		{
			name:     "local policy, a terminating endpoint that still serves keeps the node in",
			services: []*corev1.Service{svc("web", ext("192.0.2.1"), etp(local))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", false, ptr(true), true), ep("n2", true, nil, false))},
			want: []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Announce: true, Reason: ReasonLocalServing,
				Detail: "serving endpoints on node n1: 1"}},
		},
		{
			name:     "terminating and no longer serving",
			services: []*corev1.Service{svc("web", ext("192.0.2.1"), etp(local))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", false, ptr(false), true))},
			want: []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Reason: ReasonNoLocalEndpoint,
				Detail: "externalTrafficPolicy Local, and no endpoint of ns/web on node n1 is serving"}},
		},
		{
			name:     "refused addresses: outside the allowed prefixes, special; garbage skipped",
			services: []*corev1.Service{svc("web", ext("198.51.100.1", "127.0.0.2", "nonsense", "192.0.2.1", "192.0.2.1"))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", true, nil, false))},
			want: []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Announce: true, Reason: ReasonServing, Detail: "serving endpoints: 1",
				Refused: []Refusal{
					{Addr: netip.MustParseAddr("198.51.100.1"), Detail: "198.51.100.1 is outside bgp.allowed_prefixes"},
					{Addr: netip.MustParseAddr("127.0.0.2"), Detail: "127.0.0.2 is loopback"},
				}}},
		},
		{
			name: "load balancers: ours by class, others ignored",
			services: []*corev1.Service{
				svc("a", lbIngress("192.0.2.10")),
				svc("b", lbIngress("192.0.2.11"), class("vipd.io/bgp")),
				svc("c", lbIngress("192.0.2.12"), class("metallb.io/other")),
			},
			slices: []*discoveryv1.EndpointSlice{slice("a", ep("n1", true, nil, false)), slice("b", ep("n1", true, nil, false)), slice("c", ep("n1", true, nil, false))},
			want: []Service{
				{Name: "ns/a", Addrs: addrs("192.0.2.10"), Announce: true, Reason: ReasonServing, Detail: "serving endpoints: 1"},
				{Name: "ns/b", Addrs: addrs("192.0.2.11"), Announce: true, Reason: ReasonServing, Detail: "serving endpoints: 1"},
			},
		},
		{
			name:     "a configured class is the only one served",
			policy:   &policy{loadBalancers: true, class: "example.com/x", allowed: allowed},
			services: []*corev1.Service{svc("a", lbIngress("192.0.2.10")), svc("b", lbIngress("192.0.2.11"), class("example.com/x"))},
			slices:   []*discoveryv1.EndpointSlice{slice("b", ep("n1", true, nil, false))},
			want:     []Service{{Name: "ns/b", Addrs: addrs("192.0.2.11"), Announce: true, Reason: ReasonServing, Detail: "serving endpoints: 1"}},
		},
		{
			name:     "external IPs switched off",
			policy:   &policy{loadBalancers: true, allowed: allowed},
			services: []*corev1.Service{svc("web", ext("192.0.2.1"))},
		},
		{
			name:     "node excluded by label",
			node:     node(true, ExcludeLabel),
			services: []*corev1.Service{svc("web", ext("192.0.2.1"))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", true, nil, false))},
			want: []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Reason: ReasonNodeExcluded,
				Detail: "node n1 has label " + ExcludeLabel}},
		},
		{
			name:     "node not ready",
			node:     node(false),
			services: []*corev1.Service{svc("web", ext("192.0.2.1"))},
			slices:   []*discoveryv1.EndpointSlice{slice("web", ep("n1", true, nil, false))},
			want:     []Service{{Name: "ns/web", Addrs: addrs("192.0.2.1"), Reason: ReasonNodeNotReady, Detail: "node n1 is not Ready"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := view{node: node(true), nodeName: "n1", services: tc.services, slices: map[string][]*discoveryv1.EndpointSlice{}}
			if tc.node != nil {
				v.node = tc.node
			}
			for _, sl := range tc.slices {
				key := sl.Namespace + "/" + sl.Labels[serviceNameLabel]
				v.slices[key] = append(v.slices[key], sl)
			}
			pol := p
			if tc.policy != nil {
				pol = *tc.policy
			}
			got := plan(v, pol)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("plan mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanUnknownNode(t *testing.T) {
	v := view{nodeName: "n1", services: []*corev1.Service{svc("web", ext("192.0.2.1"))}}
	got := plan(v, policy{externalIPs: true, allowed: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if len(got) != 1 || got[0].Announce || got[0].Reason != ReasonNodeUnknown {
		t.Fatalf("plan without this node's Node = %+v, want one Service not announced for %s", got, ReasonNodeUnknown)
	}
}

func ptr[T any](v T) *T { return &v }

func svc(name string, opts ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func ext(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

func etp(p corev1.ServiceExternalTrafficPolicy) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = p }
}

func lbIngress(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func class(c string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c }
}

func slice(service string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: service + "-x", Labels: map[string]string{serviceNameLabel: service}},
		Endpoints:  eps,
	}
}

func ep(node string, ready bool, serving *bool, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		NodeName:   &node,
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: serving, Terminating: &terminating},
	}
}

func node(ready bool, labels ...string) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{}}}
	for _, l := range labels {
		n.Labels[l] = ""
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	return n
}

// FuzzRequest feeds arbitrary annotations and spec.loadBalancerIP to the
// allocator's reader: it never panics, and what it accepts is valid.
func FuzzRequest(f *testing.F) {
	f.Add("192.0.2.1", "2001:db8::1, 192.0.2.2", "pool", "key")
	f.Add("", "not-an-address", "", "")
	f.Add("::ffff:192.0.2.1", "fe80::1%eth0", "a/b", "")
	f.Fuzz(func(t *testing.T, lbIP, addrList, pool, share string) {
		s := svc("x", lbIngress())
		s.Spec.LoadBalancerIP = lbIP
		s.Annotations = map[string]string{AnnotationAddresses: addrList, AnnotationPool: pool, AnnotationShare: share}
		req, bad := request(s)
		if req.Service != "ns/x" || req.Pool != pool || req.ShareKey != share {
			t.Fatalf("request %+v lost the Service's key, pool or share key", req)
		}
		if bad != nil {
			if bad.Reason != ReasonInvalidRequest || bad.Message == "" {
				t.Fatalf("a bad request reported as %+v", bad)
			}
			return
		}
		for i, a := range req.Want {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || slices.Contains(req.Want[:i], a) {
				t.Fatalf("wanted addresses %v: %s is invalid or repeated", req.Want, a)
			}
		}
	})
}
