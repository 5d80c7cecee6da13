package kube

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/vipd/vipd/internal/config"
)

// Reason says why a Service's addresses are or are not announced from
// this node. The values are stable: status shows them as reason_code and
// metrics as a label.
type Reason string

const (
	ReasonServing         Reason = "endpoints_serving"
	ReasonLocalServing    Reason = "local_endpoint_serving"
	ReasonNoEndpoint      Reason = "no_serving_endpoint"
	ReasonNoLocalEndpoint Reason = "no_local_endpoint"
	ReasonNodeUnknown     Reason = "node_unknown"
	ReasonNodeNotReady    Reason = "node_not_ready"
	ReasonNodeExcluded    Reason = "node_excluded"
	// ReasonNotAllowed refuses one address, not the Service.
	ReasonNotAllowed Reason = "address_not_allowed"
)

// Service is one Kubernetes Service as this node serves it. The JSON
// form is the local copy's (cache.go).
type Service struct {
	Name     string       `json:"name"`  // namespace/name
	Addrs    []netip.Addr `json:"addrs"` // external IPs and LoadBalancer ingress IPs it may serve
	Announce bool         `json:"announce"`
	Reason   Reason       `json:"reason,omitempty"`
	Detail   string       `json:"detail,omitempty"` // says why, for people
	// Refused are the addresses the Service asks for that no node may
	// serve (outside bgp.allowed_prefixes, or not unicast).
	Refused []Refusal `json:"refused,omitempty"`
}

// Refusal is one address vipd will neither bind nor announce.
type Refusal struct {
	Addr   netip.Addr `json:"addr"`
	Detail string     `json:"detail"`
}

// ExcludeLabel on a Node keeps external load balancers, vipd among them,
// from sending traffic to it.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// view is what plan reads: the informers' caches at one moment.
type view struct {
	node     *corev1.Node // nil: this node's Node object is not (yet) known
	nodeName string
	services []*corev1.Service
	slices   map[string][]*discoveryv1.EndpointSlice // by Service namespace/name
}

// policy is what the config decides about which Services and addresses
// this node serves.
type policy struct {
	externalIPs   bool
	loadBalancers bool
	class         string // "": no class and config.DefaultLoadBalancerClass
	allowed       []netip.Prefix
}

// ours reports whether the LoadBalancer Service svc is for vipd.
func (p policy) ours(svc *corev1.Service) bool {
	if !p.loadBalancers || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	class := svc.Spec.LoadBalancerClass
	if p.class != "" {
		return class != nil && *class == p.class
	}
	return class == nil || *class == config.DefaultLoadBalancerClass
}

// plan decides, for every Service with an address vipd serves, whether
// this node announces it. It is pure, so every rule is tested in one
// place.
func plan(v view, p policy) []Service {
	nodeUp, nodeReason, nodeDetail := nodeEligible(v)
	var out []Service
	for _, svc := range v.services {
		name := svc.Namespace + "/" + svc.Name
		s := Service{Name: name}
		for _, raw := range p.addresses(svc) {
			// The API server validates these fields, so an address
			// that does not parse is skipped rather than reported.
			addr, err := netip.ParseAddr(raw)
			if err != nil || addr.Zone() != "" {
				continue
			}
			addr = addr.Unmap()
			if why := p.refuse(addr); why != "" {
				s.Refused = append(s.Refused, Refusal{Addr: addr, Detail: why})
			} else if !slices.Contains(s.Addrs, addr) {
				s.Addrs = append(s.Addrs, addr)
			}
		}
		if len(s.Addrs) == 0 && len(s.Refused) == 0 {
			continue
		}
		if !nodeUp {
			s.Reason, s.Detail = nodeReason, nodeDetail
		} else {
			s.Announce, s.Reason, s.Detail = endpointsServe(svc, v.slices[name], v.nodeName)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// addresses lists the addresses svc asks this node to serve, unparsed.
func (p policy) addresses(svc *corev1.Service) []string {
	var out []string
	if p.externalIPs {
		out = append(out, svc.Spec.ExternalIPs...)
	}
	if p.ours(svc) {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				out = append(out, ing.IP)
			}
		}
	}
	return out
}

// refuse says why addr may not be served, or "".
func (p policy) refuse(addr netip.Addr) string {
	if what := config.SpecialAddr(addr); what != "" {
		return fmt.Sprintf("%s is %s", addr, what)
	}
	for _, pfx := range p.allowed {
		if pfx.Contains(addr) {
			return ""
		}
	}
	return fmt.Sprintf("%s is outside bgp.allowed_prefixes", addr)
}

// nodeEligible says whether this node may announce anything at all.
func nodeEligible(v view) (bool, Reason, string) {
	switch {
	case v.node == nil:
		return false, ReasonNodeUnknown, fmt.Sprintf("no Node named %q (kubernetes.node_name)", v.nodeName)
	case hasLabel(v.node, ExcludeLabel):
		return false, ReasonNodeExcluded, fmt.Sprintf("node %s has label %s", v.nodeName, ExcludeLabel)
	case !nodeReady(v.node):
		return false, ReasonNodeNotReady, fmt.Sprintf("node %s is not Ready", v.nodeName)
	}
	return true, "", ""
}

func hasLabel(n *corev1.Node, key string) bool {
	_, ok := n.Labels[key]
	return ok
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointsServe applies externalTrafficPolicy. Serving, not Ready, is
// what counts: a terminating endpoint that still serves keeps its node in,
// so a rolling update does not flap the route.
func endpointsServe(svc *corev1.Service, eps []*discoveryv1.EndpointSlice, node string) (bool, Reason, string) {
	total, local := 0, 0
	for _, sl := range eps {
		for _, ep := range sl.Endpoints {
			if !serving(ep) {
				continue
			}
			total++
			if ep.NodeName != nil && *ep.NodeName == node {
				local++
			}
		}
	}
	name := svc.Namespace + "/" + svc.Name
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		if local == 0 {
			return false, ReasonNoLocalEndpoint, fmt.Sprintf("externalTrafficPolicy Local, and no endpoint of %s on node %s is serving", name, node)
		}
		return true, ReasonLocalServing, fmt.Sprintf("serving endpoints on node %s: %d", node, local)
	}
	if total == 0 {
		return false, ReasonNoEndpoint, fmt.Sprintf("no endpoint of %s is serving", name)
	}
	return true, ReasonServing, fmt.Sprintf("serving endpoints: %d", total)
}

func serving(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	if c.Serving != nil {
		return *c.Serving
	}
	return c.Ready == nil || *c.Ready
}
