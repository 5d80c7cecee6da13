package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/yaml"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/kubeapi"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// The Kubernetes world: three nodes announce Services' addresses to a
// BIRD router and an FRR router; every vipd watches one real API server
// (through a forward to the host's loopback) under the DaemonSet's
// ServiceAccount and RBAC from deploy/kubernetes, not as admin.
const (
	kubeDeployDir = "../../deploy/kubernetes"
	kubeNamespace = "vipd" // deploy/kubernetes's namespace, ServiceAccount and Lease live there
	kubeAPIPort   = "127.0.0.1:6443"
	appNamespace  = "default"
	kubePool      = "198.51.100.64/29"
	kubePool6     = "2001:db8:100::40/126"
	kubeTinyPool  = "198.51.100.80/32"
)

type kubeWorld struct {
	*testnet.World
	cp    *kubeapi.ControlPlane
	admin kubernetes.Interface
	vipd  map[string]*testnet.Process
	conf  map[string]string // each node's config, to start it again
	top   *testing.T        // the whole test: processes started again live as long
}

// startAgain starts node's vipd again, after it stopped or died; the
// process lives until the end of the whole test, not of subtest t.
func (kw *kubeWorld) startAgain(t *testing.T, node string) {
	t.Helper()
	p, err := kw.Node(node).StartVipd(context.Background(), vipdBin, kw.conf[node])
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(kw.top, p)
	kw.vipd[node] = p
}

func newKubeWorld(t *testing.T) *kubeWorld {
	cp := worldtest.KubeAPI(t)
	ctx := t.Context()
	if out, err := cp.Apply(ctx, kubeDeployDir, false); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", kubeDeployDir, err, out)
	}
	admin, err := kubernetes.NewForConfig(cp.Admin())
	if err != nil {
		t.Fatal(err)
	}
	nodes := nodeSpecs(3)
	nbrs := neighbors(nodes, 4200000000, "")
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{
			{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: nbrs},
			{Name: "r2", Kind: testnet.FRR, ASN: 65535, Address: addr("10.255.255.2"), Neighbors: nbrs},
		},
		Nodes: nodes,
	})
	kw := &kubeWorld{World: w, cp: cp, admin: admin, vipd: map[string]*testnet.Process{}, conf: map[string]string{}, top: t}
	for _, n := range w.Nodes() {
		createReadyNode(t, admin, n.Name())
		forwardKubeAPI(t, n, cp)

		kubeconfig, err := cp.ServiceAccountKubeconfig(ctx, kubeNamespace, "vipd", "https://"+kubeAPIPort)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(n.Dir(), "kubeconfig")
		if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
			t.Fatal(err)
		}
		kw.conf[n.Name()] = fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [198.51.100.0/24, "2001:db8:100::/64"]
  peers:
%s
pools:
  - {name: default, prefixes: [%s, "%s"]}
  - {name: tiny, prefixes: [%s]}
kubernetes:
  kubeconfig: %s
  node_name: %s
  namespace: %s
  lease_duration: 4s
`, peersYAML(peer{"r1", addr("10.255.255.1"), 65535, ""}, peer{"r2", addr("10.255.255.2"), 65535, ""}),
			kubePool, kubePool6, kubeTinyPool, path, n.Name(), kubeNamespace) + n.RuntimeYAML()
		kw.vipd[n.Name()] = startVipdConfig(t, n, kw.conf[n.Name()])
	}
	return kw
}

// forwardKubeAPI relays kubeAPIPort on the node's loopback to the API
// server on the host's, until the test ends.
func forwardKubeAPI(t *testing.T, n *testnet.Node, cp *kubeapi.ControlPlane) {
	t.Helper()
	l, err := n.Listen("tcp", kubeAPIPort)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = kubeapi.Forward(ctx, l, cp.Addr()) }()
	t.Cleanup(func() { cancel(); <-done })
}

// createReadyNode registers a Ready Node, as a kubelet would.
func createReadyNode(t *testing.T, admin kubernetes.Interface, name string) {
	t.Helper()
	if _, err := admin.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setNodeReady(t, admin, name, true)
}

// setNodeReady sets the Node's Ready condition, as its kubelet would.
func setNodeReady(t *testing.T, admin kubernetes.Interface, name string, ready bool) {
	t.Helper()
	n, err := admin.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "E2E"}}
	if _, err := admin.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// service creates a Service; edit fills in its spec.
func (kw *kubeWorld) service(t *testing.T, name string, edit func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	edit(svc)
	out, err := kw.admin.CoreV1().Services(appNamespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Service %s: %v", name, err)
	}
	return out
}

// updateService changes a Service, retrying on a conflict with the
// allocator's status writes.
func (kw *kubeWorld) updateService(t *testing.T, name string, edit func(*corev1.Service)) {
	t.Helper()
	services := kw.admin.CoreV1().Services(appNamespace)
	for range 10 {
		svc, err := services.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		edit(svc)
		if _, err = services.Update(t.Context(), svc, metav1.UpdateOptions{}); err == nil {
			return
		} else if !apierrors.IsConflict(err) {
			t.Fatalf("update Service %s: %v", name, err)
		}
	}
	t.Fatalf("update Service %s: conflicts 10 times", name)
}

// endpoints sets the Service's one EndpointSlice: one endpoint per node
// named, ready unless listed in unready.
func (kw *kubeWorld) endpoints(t *testing.T, service string, nodes []string, unready ...string) {
	t.Helper()
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: service + "-e2e",
			Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		ready := !slices.Contains(unready, n)
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i+1)},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
		})
	}
	slices := kw.admin.DiscoveryV1().EndpointSlices(appNamespace)
	old, err := slices.Get(t.Context(), sl.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = slices.Create(t.Context(), sl, metav1.CreateOptions{})
	case err == nil:
		sl.ResourceVersion = old.ResourceVersion
		_, err = slices.Update(t.Context(), sl, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("EndpointSlice of %s: %v", service, err)
	}
}

// waitIngress waits for the allocator to give the Service addresses, and
// returns them.
func (kw *kubeWorld) waitIngress(t *testing.T, name string) []netip.Addr {
	t.Helper()
	var got []netip.Addr
	kw.waitFor(t, "Service "+name+" has an address in its status", func() bool {
		svc, err := kw.admin.CoreV1().Services(appNamespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		got = nil
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			got = append(got, addr(ing.IP))
		}
		return len(got) > 0
	})
	return got
}

// waitEvent waits for an Event with reason on the Service.
func (kw *kubeWorld) waitEvent(t *testing.T, service, reason string) corev1.Event {
	t.Helper()
	var found corev1.Event
	kw.waitFor(t, fmt.Sprintf("Event %s on Service %s", reason, service), func() bool {
		evs, err := kw.admin.CoreV1().Events(appNamespace).List(t.Context(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + service})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == reason {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func (kw *kubeWorld) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRoutes waits until both routers' FIBs route each address via
// exactly the nodes named (none: no route).
func (kw *kubeWorld) waitRoutes(t *testing.T, addrs []netip.Addr, nodes ...string) {
	t.Helper()
	waitRoutes(t, kw.World, addrs, nodes...)
}

// bound reports whether the address is on the node's lo.
func bound(t *testing.T, n *testnet.Node, a netip.Addr) bool {
	t.Helper()
	out, err := n.Exec(t.Context(), "ip", "-o", "addr", "show", "dev", "lo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, " "+a.String()+"/")
}

func allNodes(kw *kubeWorld) []string {
	var out []string
	for _, n := range kw.Nodes() {
		out = append(out, n.Name())
	}
	return out
}

// TestKubernetes runs the Kubernetes source end to end; the cases share
// one world (a control plane, two routers, three vipd nodes) and run in
// order.
func TestKubernetes(t *testing.T) {
	kw := newKubeWorld(t)
	nodes := allNodes(kw)

	t.Run("external IPs", func(t *testing.T) {
		ips := []netip.Addr{addr("198.51.100.10"), addr("2001:db8:100::10")}
		kw.service(t, "web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{ips[0].String(), ips[1].String()} })
		kw.endpoints(t, "web", []string{"n1"})
		kw.waitRoutes(t, ips, nodes...)
		for _, n := range kw.Nodes() {
			for _, a := range ips {
				if !bound(t, n, a) {
					t.Errorf("%s: %s not on lo", n.Name(), a)
				}
			}
		}
		st := waitStatus(t, kw.Node("n2"), "web announced as default/web", func(st api.Status) bool {
			for _, v := range st.VIPs {
				if v.Service == "default/web" && v.Announced && v.ReasonCode == "endpoints_serving" {
					return true
				}
			}
			return false
		})
		if st.Kubernetes == nil || !st.Kubernetes.Connected || !st.Kubernetes.Synced {
			t.Errorf("status kubernetes = %+v, want connected and synced", st.Kubernetes)
		}
		kw.waitEvent(t, "web", "Announced")

		// One IP removed: withdrawn, then gone from lo; the other stays.
		kw.updateService(t, "web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{ips[0].String()} })
		kw.waitRoutes(t, ips[1:])
		kw.waitFor(t, ips[1].String()+" gone from every node's lo", func() bool {
			for _, n := range kw.Nodes() {
				if bound(t, n, ips[1]) {
					return false
				}
			}
			return true
		})
		kw.waitRoutes(t, ips[:1], nodes...)

		// An address outside bgp.allowed_prefixes: never bound, an Event says why.
		kw.updateService(t, "web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{ips[0].String(), "203.0.113.9"} })
		ev := kw.waitEvent(t, "web", "AddressNotAllowed")
		if !strings.Contains(ev.Message, "203.0.113.9 is outside bgp.allowed_prefixes") {
			t.Errorf("AddressNotAllowed event says %q", ev.Message)
		}
		waitStatus(t, kw.Node("n1"), "203.0.113.9 refused in status", func(st api.Status) bool {
			for _, v := range st.VIPs {
				if v.Prefix == "203.0.113.9/32" && !v.Announced && !v.Bound && v.ReasonCode == "address_not_allowed" {
					return true
				}
			}
			return false
		})
		if bound(t, kw.Node("n1"), addr("203.0.113.9")) {
			t.Errorf("203.0.113.9 is on n1's lo")
		}

		// The Service deleted: withdrawn at the router, then unbound.
		fib := watchKernel(t, &kw.Router("r1").Host, "route")
		addresses := watchKernel(t, &kw.Node("n1").Host, "address")
		if err := kw.admin.CoreV1().Services(appNamespace).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		kw.waitRoutes(t, ips[:1])
		kw.waitFor(t, ips[0].String()+" gone from lo", func() bool { return !bound(t, kw.Node("n1"), ips[0]) })
		routeBeforeAddress(t, "external IP", fib, addresses, ips[0])
	})

	var lb1, lb2 []netip.Addr
	t.Run("load balancers", func(t *testing.T) {
		lbSvc := func(name string, port int32, edit func(*corev1.Service)) {
			kw.service(t, name, func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.Ports[0].Port = port
				if edit != nil {
					edit(s)
				}
			})
			kw.endpoints(t, name, []string{"n1", "n2"})
		}
		lbSvc("lb1", 80, nil)
		lb1 = kw.waitIngress(t, "lb1")
		lbSvc("lb2", 80, nil)
		lb2 = kw.waitIngress(t, "lb2")
		if len(lb1) != 1 || len(lb2) != 1 || lb1[0] == lb2[0] || !mustPrefix(kubePool).Contains(lb1[0]) || !mustPrefix(kubePool).Contains(lb2[0]) {
			t.Fatalf("lb1 %v, lb2 %v: want one address each, different, from %s", lb1, lb2, kubePool)
		}
		kw.waitRoutes(t, slices.Concat(lb1, lb2), nodes...)
		kw.waitEvent(t, "lb1", "AddressAllocated")

		share := func(s *corev1.Service) { s.Annotations["vipd.io/allow-shared-ip"] = "shared" }
		lbSvc("sa", 80, share)
		lbSvc("sb", 443, share)
		sa, sb := kw.waitIngress(t, "sa"), kw.waitIngress(t, "sb")
		if !slices.Equal(sa, sb) || slices.Contains(lb1, sa[0]) || slices.Contains(lb2, sa[0]) {
			t.Fatalf("shared pair got %v and %v; want one address, not lb1's or lb2's", sa, sb)
		}

		tiny := func(s *corev1.Service) { s.Annotations["vipd.io/pool"] = "tiny" }
		lbSvc("t1", 80, tiny)
		if got := kw.waitIngress(t, "t1"); !slices.Equal(got, []netip.Addr{mustPrefix(kubeTinyPool).Addr()}) {
			t.Fatalf("t1 got %v, want %s", got, kubeTinyPool)
		}
		lbSvc("t2", 80, tiny)
		ev := kw.waitEvent(t, "t2", "PoolExhausted")
		if !strings.Contains(ev.Message, "tiny") {
			t.Errorf("PoolExhausted event says %q; want it to name the pool", ev.Message)
		}
		for name, want := range map[string][]netip.Addr{"lb1": lb1, "lb2": lb2, "sa": sa} {
			if got := kw.waitIngress(t, name); !slices.Equal(got, want) {
				t.Errorf("%s's address changed from %v to %v after the pool ran out", name, want, got)
			}
		}
		kw.waitRoutes(t, slices.Concat(lb1, lb2, sa), nodes...)

		// t1 stops being a LoadBalancer: its address is free, and t2, which
		// waited for one, gets it.
		kw.updateService(t, "t1", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
		if got := kw.waitIngress(t, "t2"); !slices.Equal(got, []netip.Addr{mustPrefix(kubeTinyPool).Addr()}) {
			t.Fatalf("t2 got %v once t1 let go, want %s", got, kubeTinyPool)
		}

		want := addr("198.51.100.70")
		lbSvc("asked", 80, func(s *corev1.Service) { s.Annotations["vipd.io/addresses"] = want.String() })
		if got := kw.waitIngress(t, "asked"); !slices.Equal(got, []netip.Addr{want}) {
			t.Fatalf("asked for %s, got %v", want, got)
		}
		kw.waitRoutes(t, []netip.Addr{want}, nodes...)

		dual := func(s *corev1.Service) {
			p := corev1.IPFamilyPolicyRequireDualStack
			s.Spec.IPFamilyPolicy = &p
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}
		lbSvc("dual", 80, dual)
		ds := kw.waitIngress(t, "dual")
		if len(ds) != 2 || !ds[0].Is4() || !ds[1].Is6() || !mustPrefix(kubePool6).Contains(ds[1]) {
			t.Fatalf("dual got %v; want an IPv4 address and an IPv6 one from %s", ds, kubePool6)
		}
		kw.waitRoutes(t, ds, nodes...)
	})

	t.Run("drain", func(t *testing.T) {
		n2 := kw.Node("n2")
		if out, err := vipdCLI(n2, "drain", "default/lb1"); err != nil {
			t.Fatalf("vipd drain default/lb1: %v\n%s", err, out)
		}
		kw.waitRoutes(t, lb1, "n1", "n3")
		ev := kw.waitEvent(t, "lb1", "Withdrawn")
		if ev.Source.Host != "n2" || !strings.Contains(ev.Message, "drained") {
			t.Errorf("Withdrawn event from %q says %q; want n2, drained", ev.Source.Host, ev.Message)
		}
		kw.waitRoutes(t, lb2, nodes...) // untouched
		if out, err := vipdCLI(n2, "undrain", "default/lb1"); err != nil {
			t.Fatalf("vipd undrain default/lb1: %v\n%s", err, out)
		}
		kw.waitRoutes(t, lb1, nodes...)
	})

	t.Run("traffic policy Local", func(t *testing.T) {
		ip := []netip.Addr{addr("198.51.100.20")}
		kw.service(t, "local", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort // the traffic policy needs NodePort or LoadBalancer
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.ExternalIPs = []string{ip[0].String()}
		})
		kw.endpoints(t, "local", []string{"n2"})
		kw.waitRoutes(t, ip, "n2")
		kw.endpoints(t, "local", []string{"n2"}, "n2")
		kw.waitRoutes(t, ip)
		kw.endpoints(t, "local", []string{"n3"})
		kw.waitRoutes(t, ip, "n3")
		waitStatus(t, kw.Node("n1"), "n1 says why it does not announce", func(st api.Status) bool {
			for _, v := range st.VIPs {
				if v.Service == "default/local" && !v.Announced && v.ReasonCode == "no_local_endpoint" && v.Bound {
					return true
				}
			}
			return false
		})
	})

	t.Run("node excluded or not ready", func(t *testing.T) {
		n, err := kw.admin.CoreV1().Nodes().Get(t.Context(), "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
		if _, err := kw.admin.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		kw.waitRoutes(t, slices.Concat(lb1, lb2), "n2", "n3")
		kw.waitRoutes(t, []netip.Addr{addr("198.51.100.20")}, "n3") // untouched
		n, _ = kw.admin.CoreV1().Nodes().Get(t.Context(), "n1", metav1.GetOptions{})
		delete(n.Labels, "node.kubernetes.io/exclude-from-external-load-balancers")
		if _, err := kw.admin.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		kw.waitRoutes(t, slices.Concat(lb1, lb2), nodes...)

		setNodeReady(t, kw.admin, "n3", false)
		kw.waitRoutes(t, slices.Concat(lb1, lb2), "n1", "n2")
		setNodeReady(t, kw.admin, "n3", true)
		kw.waitRoutes(t, slices.Concat(lb1, lb2), nodes...)
	})

	t.Run("API server lost", func(t *testing.T) {
		addrs := slices.Concat(lb1, lb2)
		if err := kw.cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, kw.Node("n1"), "the API server reported unreachable", func(st api.Status) bool {
			return st.Kubernetes != nil && !st.Kubernetes.Connected
		})
		kw.holdRoutes(t, addrs, nodes, 30*time.Second)
		// A node restarted meanwhile serves its local copy: it binds and
		// announces the addresses again without a list.
		n3 := kw.Node("n3")
		if err := kw.vipd["n3"].Stop(stopTimeout); err != nil {
			t.Fatal(err)
		}
		kw.startAgain(t, "n3")
		st := waitStatus(t, n3, "n3 back, serving its local copy", func(st api.Status) bool {
			return st.Kubernetes != nil && !st.Kubernetes.Synced && st.Kubernetes.LocalCopy && len(st.Peers) > 0 && st.Peers[0].State == "Established"
		})
		kw.waitRoutes(t, addrs, nodes...)
		for _, a := range addrs {
			if !bound(t, n3, a) {
				t.Errorf("n3 restarted without the API server: %s not on lo (kubernetes status %+v)", a, st.Kubernetes)
			}
		}
		if err := kw.cp.StartAPIServer(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, kw.Node("n1"), "the API server reachable again", func(st api.Status) bool {
			return st.Kubernetes != nil && st.Kubernetes.Connected
		})
		kw.holdRoutes(t, addrs, nodes, 5*time.Second)
	})

	t.Run("allocator killed", func(t *testing.T) {
		lease, err := kw.admin.CoordinationV1().Leases(kubeNamespace).Get(t.Context(), "vipd-allocator", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			t.Fatalf("allocator lease: %v %+v", err, lease)
		}
		old := *lease.Spec.HolderIdentity
		if err := kw.vipd[old].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		kw.waitFor(t, "another node takes the allocator lease", func() bool {
			l, err := kw.admin.CoordinationV1().Leases(kubeNamespace).Get(t.Context(), "vipd-allocator", metav1.GetOptions{})
			return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != old && *l.Spec.HolderIdentity != ""
		})
		kw.service(t, "lb3", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
		lb3 := kw.waitIngress(t, "lb3")
		if slices.Contains(lb1, lb3[0]) || slices.Contains(lb2, lb3[0]) {
			t.Errorf("the new allocator gave lb3 %v, already lb1's %v or lb2's %v", lb3, lb1, lb2)
		}
		for name, want := range map[string][]netip.Addr{"lb1": lb1, "lb2": lb2} {
			if got := kw.waitIngress(t, name); !slices.Equal(got, want) {
				t.Errorf("%s's address changed from %v to %v with the new allocator", name, want, got)
			}
		}
		_ = kw.vipd[old].Wait(stopTimeout)
		kw.startAgain(t, old)
		kw.waitRoutes(t, slices.Concat(lb1, lb2), nodes...)
	})
}

// holdRoutes checks for d that both routers keep routing each address via
// every node named: a lost API server must not withdraw anything.
func (kw *kubeWorld) holdRoutes(t *testing.T, addrs []netip.Addr, nodes []string, d time.Duration) {
	t.Helper()
	holdRoutes(t, kw.World, addrs, len(nodes), d)
}

// TestKubernetesManifests: every manifest in deploy/kubernetes passes the
// API server's own validation (kubectl apply --dry-run=server).
func TestKubernetesManifests(t *testing.T) {
	cp := worldtest.KubeAPI(t)
	admin, err := kubernetes.NewForConfig(cp.Admin())
	if err != nil {
		t.Fatal(err)
	}
	// A dry run creates nothing, so the namespaced objects need their
	// namespace to exist already.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNamespace}}
	if _, err := admin.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Apply(t.Context(), kubeDeployDir, true); err != nil {
		t.Fatalf("kubectl apply --dry-run=server -f %s: %v\n%s", kubeDeployDir, err, out)
	}
}

// TestKubernetesConfigMap: the example vipd.yaml in deploy/kubernetes is a
// valid config with a kubernetes section.
func TestKubernetesConfigMap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(kubeDeployDir, "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(cm.Data["vipd.yaml"]))
	if err != nil {
		t.Fatalf("configmap.yaml's vipd.yaml: %v", err)
	}
	if cfg.Kubernetes == nil || len(cfg.Pools) == 0 {
		t.Errorf("configmap.yaml's vipd.yaml: kubernetes %+v, pools %v; want both", cfg.Kubernetes, cfg.Pools)
	}
}
