package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/kubeapi"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// The Kubernetes benchmarks run vipd and MetalLB's own speaker (native BGP
// mode, test/metallb/build.sh) one after the other, each in a fresh world
// of its own: a control plane, BIRD router r1 and three nodes peering with
// it on the LAN (single-hop), the same for both but for BFD, which only
// vipd speaks. Both take addresses for LoadBalancer Services from the same
// pool and are measured at the router's kernel FIB.
const (
	metallbEnv       = "VIPD_METALLB"   // the directory test/metallb/build.sh prints
	metallbNamespace = "metallb-system" // the namespace of MetalLB's objects, as its manifests install it
	kubeBenchPool    = "198.18.0.0/21"  // 2048 addresses: enough for kubeScaleServices
	// kubeBenchTrials is fewer than benchTrials: every trial goes through
	// the API server, and MetalLB's node-loss trials take a hold time each.
	kubeBenchTrials   = 5
	kubeScaleServices = 1000
	kubeScaleTrials   = 2
	// kubeDefaultHoldTrials is the node-loss trials of MetalLB at its
	// default 90 s hold time.
	kubeDefaultHoldTrials = 2
	// kubeRecoverTimeout bounds a node's return to the ECMP set after a
	// cut: MetalLB's native session redials with a backoff that doubles
	// from 1 s.
	kubeRecoverTimeout = 3 * time.Minute
	// kubeSettle is the quiet time before each trial of the Service
	// created row: the previous trial's Service is out of the FIB when the
	// withdrawal arrives, but the speaker may still be finishing its
	// removal (vipd keeps the address 100 ms after the withdrawal, and its
	// next pass waits for that), which is not what a new Service in a
	// quiet cluster meets.
	kubeSettle = time.Second
)

// kubeTool is the speaker a Kubernetes world runs on its nodes.
type kubeTool string

const (
	toolVipd    kubeTool = "vipd"
	toolMetalLB kubeTool = "metallb"
)

// kubeBench is one tool's world.
type kubeBench struct {
	*testnet.World
	tool  kubeTool
	cp    *kubeapi.ControlPlane
	admin kubernetes.Interface
	r     *testnet.Router
	hops  []netip.Addr // every node's LAN address: the full ECMP set
	pool  netip.Prefix
}

// kubeBenchTables are the four figures, each with a row per tool.
type kubeBenchTables struct {
	created, unready, scale, nodeLoss *benchTable
}

// TestBenchKubernetes measures, for vipd and for MetalLB's speaker in
// native BGP mode on the same kind of world and router: a LoadBalancer
// Service created → ECMP over all three nodes in the router's FIB; with
// externalTrafficPolicy Local, one node's endpoint unready → its nexthop
// gone; kubeScaleServices Services created at once → all in the FIB; and
// node loss → nexthop gone (vipd with BFD, MetalLB with its BGP hold time:
// its native mode has no BFD). Target: vipd no slower than MetalLB on any
// row.
func TestBenchKubernetes(t *testing.T) {
	skipUnlessBench(t)
	metallbDir := os.Getenv(metallbEnv)
	if metallbDir == "" {
		t.Fatalf("benchmark needs MetalLB: set %s to the directory test/metallb/build.sh prints (make bench does)", metallbEnv)
	}
	tabs := kubeBenchTables{
		created: newBenchTable("kube-service-created", "LoadBalancer Service created (endpoints ready on 3 nodes) → 3-nexthop ECMP route in the router's FIB (target: vipd no slower than MetalLB)"),
		unready: newBenchTable("kube-endpoint-unready", "externalTrafficPolicy Local, one node's endpoint unready → its nexthop gone from the router's FIB (target: vipd no slower than MetalLB)"),
		scale: newBenchTable("kube-1k-services", fmt.Sprintf("%d LoadBalancer Services created at once → all as 3-nexthop routes in the router's FIB (target: vipd no slower than MetalLB)",
			kubeScaleServices)),
		nodeLoss: newBenchTable("kube-node-loss", "node loss (all its packets dropped) → nexthop gone from the router's FIB: vipd with BFD, MetalLB native (no BFD) with its hold time"),
	}
	versions := []string{vipdVersion(t), metallbVersion(t, metallbDir), routerVersion(testnet.BIRD), kubeAPIServerVersion()}
	for _, tb := range []*benchTable{tabs.created, tabs.unready, tabs.scale, tabs.nodeLoss} {
		for _, v := range versions {
			tb.version(v)
		}
	}
	for _, tool := range []kubeTool{toolVipd, toolMetalLB} {
		t.Run(string(tool), func(t *testing.T) { runKubeBench(t, tool, metallbDir, &tabs) })
	}
	for _, tb := range []*benchTable{tabs.created, tabs.unready, tabs.scale, tabs.nodeLoss} {
		if len(tb.Rows) > 0 { // a failed world leaves a table empty: keep the last results
			tb.report(t)
		}
	}
}

// runKubeBench builds tool's world and runs every row on it in turn; a
// row that fails leaves the others to run.
func runKubeBench(t *testing.T, tool kubeTool, metallbDir string, tabs *kubeBenchTables) {
	kb := newKubeBench(t, tool, metallbDir)
	name := string(tool)
	if tool == toolMetalLB {
		name = "metallb native, hold time 9s"
	}
	t.Run("created", func(t *testing.T) {
		ecmp, status := kb.benchCreated(t)
		tabs.created.Rows = append(tabs.created.Rows, benchRow{Setup: string(tool), Router: "bird",
			Metrics: []metric{timeMetric("ecmp", ecmp), timeMetric("address in status", status)}})
	})
	t.Run("unready", func(t *testing.T) {
		tabs.unready.Rows = append(tabs.unready.Rows, benchRow{Setup: string(tool), Router: "bird",
			Metrics: []metric{timeMetric("gone", kb.benchUnready(t))}})
	})
	t.Run("scale", func(t *testing.T) {
		created, announced := kb.benchScale(t)
		tabs.scale.Rows = append(tabs.scale.Rows, benchRow{Setup: fmt.Sprintf("%s, %d Services", tool, kubeScaleServices), Router: "bird",
			Metrics: []metric{timeMetric("all in fib", announced), timeMetric("created", created)}})
	})
	t.Run("node loss", func(t *testing.T) {
		setup := "vipd, BFD 300ms × 3 single-hop"
		if tool == toolMetalLB {
			setup = name
		}
		tabs.nodeLoss.Rows = append(tabs.nodeLoss.Rows, benchRow{Setup: setup, Router: "bird",
			Metrics: []metric{timeMetric("time", kb.benchNodeLoss(t, kubeBenchTrials))}})
	})
	if tool != toolMetalLB {
		return
	}
	t.Run("node loss at default hold time", func(t *testing.T) {
		kb.applyMetalLBConfig(t, 0)
		tabs.nodeLoss.Rows = append(tabs.nodeLoss.Rows, benchRow{Setup: "metallb native, default hold time (90s)", Router: "bird",
			Metrics: []metric{timeMetric("time", kb.benchNodeLoss(t, kubeDefaultHoldTrials))}})
	})
}

// newKubeBench starts a control plane, a world of BIRD router r1 and three
// nodes, and tool on every node, and waits until a Service is announced
// through all three (sessions up, allocator ready).
func newKubeBench(t *testing.T, tool kubeTool, metallbDir string) *kubeBench {
	cp := worldtest.KubeAPI(t)
	cfg := cp.Admin()
	cfg.QPS, cfg.Burst = 500, 1000 // the scale row creates thousands of objects
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := nodeSpecs(3)
	var nbrs []testnet.Neighbor
	for _, nb := range neighbors(nodes, 4200000000, "") {
		nb.Multihop = false // MetalLB's native sessions are single-hop
		if tool == toolVipd {
			nb.BFD = &testnet.BFDSpec{} // 300 ms × 3, single-hop
		}
		nbrs = append(nbrs, nb)
	}
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: nbrs}},
		Nodes:   nodes,
	})
	kb := &kubeBench{World: w, tool: tool, cp: cp, admin: admin, r: w.Router("r1"), hops: addrs4(w.Nodes()), pool: mustPrefix(kubeBenchPool)}
	for _, n := range w.Nodes() {
		createReadyNode(t, admin, n.Name())
		forwardKubeAPI(t, n, cp)
	}
	switch tool {
	case toolVipd:
		kb.startVipd(t)
	case toolMetalLB:
		kb.startMetalLB(t, metallbDir)
	}
	// Warm up: the first Service waits for the sessions and, for vipd, the
	// allocator's lease.
	kb.endpointSlice(t, "warmup", kb.nodeNames(), nil)
	kb.lbService(t, "warmup", nil)
	if _, err := kb.waitPoolRoutes(t.Context(), 1, 3*time.Minute); err != nil {
		t.Fatalf("warm-up Service never announced: %v", err)
	}
	kb.deleteService(t, "warmup")
	if _, err := kb.waitPoolRoutes(t.Context(), 0, convergeTimeout); err != nil {
		t.Fatal(err)
	}
	return kb
}

func (kb *kubeBench) nodeNames() []string {
	var out []string
	for _, n := range kb.Nodes() {
		out = append(out, n.Name())
	}
	return out
}

// startVipd runs the non-race vipd on every node under the DaemonSet's
// ServiceAccount, as the e2e test does, with BFD towards r1.
func (kb *kubeBench) startVipd(t *testing.T) {
	ctx := t.Context()
	if out, err := kb.cp.Apply(ctx, kubeDeployDir, false); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", kubeDeployDir, err, out)
	}
	for _, n := range kb.Nodes() {
		kubeconfig, err := kb.cp.ServiceAccountKubeconfig(ctx, kubeNamespace, "vipd", "https://"+kubeAPIPort)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(n.Dir(), "kubeconfig")
		if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
			t.Fatal(err)
		}
		config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [%[1]s]
  peers:
    - name: r1
      address: %[2]s
      asn: 65535
      hold_time: 9s
      bfd: {enabled: true}
pools:
  - {name: default, prefixes: [%[1]s]}
kubernetes:
  kubeconfig: %[3]s
  node_name: %[4]s
  namespace: %[5]s
`, kubeBenchPool, kb.r.Addr4(), path, n.Name(), kubeNamespace)
		startBinary(t, n, benchVipd(t), config+n.RuntimeYAML())
	}
}

// startMetalLB installs MetalLB's CRDs, its Pod objects and its config,
// then runs its controller once (in n1's namespace) and a speaker on every
// node, all through the node's forward with a cluster-admin
// ServiceAccount's kubeconfig. Native BGP mode (METALLB_BGP_TYPE unset);
// memberlist stays off (no --ml-bindaddr): the speakers run on every node.
func (kb *kubeBench) startMetalLB(t *testing.T, dir string) {
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metallbNamespace}}
	if _, err := kb.admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := kb.cp.Apply(ctx, filepath.Join(dir, "crds"), false); err != nil {
		t.Fatalf("kubectl apply MetalLB's CRDs: %v\n%s", err, out)
	}
	if out, err := kb.cp.Kubectl(ctx, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
		t.Fatalf("MetalLB's CRDs not established: %v\n%s", err, out)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metallb-bench"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: metallbNamespace, Name: "metallb"}},
	}
	if _, err := kb.admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kb.applyMetalLBConfig(t, 9*time.Second)
	kubeconfig, err := kb.cp.ServiceAccountKubeconfig(ctx, metallbNamespace, "metallb", "https://"+kubeAPIPort)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range kb.Nodes() {
		path := filepath.Join(n.Dir(), "metallb.kubeconfig")
		if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			startMetalLBProcess(t, n, "mlbctl", filepath.Join(dir, "controller"), "--kubeconfig="+path,
				"--namespace="+metallbNamespace, "--webhook-mode=disabled", "--port=7473")
		}
		// The speaker reads its own Pod at start.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: metallbNamespace, Name: "speaker-" + n.Name(),
				Labels: map[string]string{"app": "metallb", "component": "speaker"}},
			Spec: corev1.PodSpec{NodeName: n.Name(), Containers: []corev1.Container{{Name: "speaker", Image: "quay.io/metallb/speaker"}}},
		}
		if _, err := kb.admin.CoreV1().Pods(metallbNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		startMetalLBProcess(t, n, "mlbspeaker", filepath.Join(dir, "speaker"), "--kubeconfig="+path,
			"--namespace="+metallbNamespace, "--node-name="+n.Name(), "--pod-name="+pod.Name, "--port=7472")
	}
}

// startMetalLBProcess runs one MetalLB program in node's namespace and
// shows its log if the test fails; the world ends it.
func startMetalLBProcess(t *testing.T, n *testnet.Node, name, bin string, args ...string) {
	t.Helper()
	p, err := n.StartProcess(name, append([]string{bin}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s on %s, log tail:\n%s", name, n.Name(), tail(p.Log(), 60))
		}
	})
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// applyMetalLBConfig applies MetalLB's pool, its BGP advertisement and r1
// as its one BGPPeer with holdTime hold (0: MetalLB's default, 90 s).
func (kb *kubeBench) applyMetalLBConfig(t *testing.T, hold time.Duration) {
	t.Helper()
	holdLine := ""
	if hold > 0 {
		holdLine = fmt.Sprintf("\n  holdTime: %v", hold)
	}
	manifest := fmt.Sprintf(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench, namespace: %[1]s}
spec:
  addresses: [%[2]s]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench, namespace: %[1]s}
spec:
  ipAddressPools: [bench]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r1, namespace: %[1]s}
spec:
  myASN: 4200000000
  peerASN: %[3]d
  peerAddress: %[4]s%[5]s
`, metallbNamespace, kubeBenchPool, kb.r.ASN(), kb.r.Addr4(), holdLine)
	path := filepath.Join(t.TempDir(), "metallb-config.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if hold == 0 {
		// apply would merge and keep the old holdTime: replace the peer.
		if out, err := kb.cp.Kubectl(t.Context(), "replace", "-f", path); err != nil {
			t.Fatalf("kubectl replace MetalLB's config: %v\n%s", err, out)
		}
		return
	}
	if out, err := kb.cp.Apply(t.Context(), path, false); err != nil {
		t.Fatalf("kubectl apply MetalLB's config: %v\n%s", err, out)
	}
}

// lbService creates a LoadBalancer Service, without node ports; edit may
// change it first.
func (kb *kubeBench) lbService(t *testing.T, name string, edit func(*corev1.Service)) {
	t.Helper()
	if err := kb.createService(t.Context(), name, edit); err != nil {
		t.Fatal(err)
	}
}

func (kb *kubeBench) createService(ctx context.Context, name string, edit func(*corev1.Service)) error {
	no := false
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: &no,
			Selector:                      map[string]string{"app": name},
			Ports:                         []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if edit != nil {
		edit(svc)
	}
	if _, err := kb.admin.CoreV1().Services(appNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Service %s: %w", name, err)
	}
	return nil
}

// cleanupService deletes the Service when the (sub)test ends, if it is
// still there: a failed row's Service must not confuse the next row.
func (kb *kubeBench) cleanupService(t *testing.T, name string) {
	t.Cleanup(func() {
		err := kb.admin.CoreV1().Services(appNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Service %s: %v", name, err)
		}
	})
}

func (kb *kubeBench) deleteService(t *testing.T, name string) {
	t.Helper()
	err := kb.admin.CoreV1().Services(appNamespace).Delete(t.Context(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// endpointSlice creates or replaces the Service's one EndpointSlice: an
// endpoint on each node named, ready unless listed in unready.
func (kb *kubeBench) endpointSlice(t *testing.T, service string, nodes, unready []string) {
	t.Helper()
	if err := kb.putEndpointSlice(t.Context(), service, nodes, unready); err != nil {
		t.Fatal(err)
	}
}

func (kb *kubeBench) putEndpointSlice(ctx context.Context, service string, nodes, unready []string) error {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: service + "-bench",
			Labels: map[string]string{discoveryv1.LabelServiceName: service, "bench": "kube"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("http"), Protocol: ptrTo(corev1.ProtocolTCP), Port: ptrTo(int32(8080))}},
	}
	for i, n := range nodes {
		ready := !slices.Contains(unready, n)
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.10", i+1)},
			NodeName:   ptrTo(n),
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
		})
	}
	api := kb.admin.DiscoveryV1().EndpointSlices(appNamespace)
	old, err := api.Get(ctx, sl.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, sl, metav1.CreateOptions{})
	case err == nil:
		sl.ResourceVersion = old.ResourceVersion
		_, err = api.Update(ctx, sl, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("EndpointSlice of %s: %w", service, err)
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// benchCreated: each trial creates a Service whose EndpointSlice (ready
// on every node) already exists, then polls the router's FIB every 20 ms
// for the pool's one route until it has all three nexthops. It returns
// those times, and the times until a watch saw the allocator's address in
// the Service's status (which splits allocation from announcement).
func (kb *kubeBench) benchCreated(t *testing.T) (ecmp, status []time.Duration) {
	for i := range kubeBenchTrials {
		name := fmt.Sprintf("created%d", i)
		kb.cleanupService(t, name)
		kb.endpointSlice(t, name, kb.nodeNames(), nil)
		addressed := kb.watchAddressed(t, name)
		time.Sleep(kubeSettle)
		start := time.Now()
		kb.lbService(t, name, nil)
		if _, err := kb.waitPoolRoutesEvery(t.Context(), 1, convergeTimeout, 20*time.Millisecond); err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		ecmp = append(ecmp, time.Since(start))
		select {
		case at := <-addressed:
			status = append(status, at.Sub(start))
		case <-time.After(convergeTimeout):
			t.Fatalf("trial %d: the watch never saw %s's address", i, name)
		}
		kb.deleteService(t, name)
		if _, err := kb.waitPoolRoutes(t.Context(), 0, convergeTimeout); err != nil {
			t.Fatalf("trial %d: Service deleted: %v", i, err)
		}
	}
	return ecmp, status
}

// watchAddressed watches Service name (which need not exist yet) and
// sends the time the watch first saw an address in its status.
func (kb *kubeBench) watchAddressed(t *testing.T, name string) <-chan time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), convergeTimeout)
	// A watch without a resource version asks the API server's watch
	// cache to catch up with etcd first; with etcd 3.4 (no progress
	// notifications) it times out when only other kinds changed. Start
	// from a list's version, as informers do.
	sel := metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	list, err := kb.admin.CoreV1().Services(appNamespace).List(ctx, sel)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	sel.ResourceVersion = list.ResourceVersion
	w, err := kb.admin.CoreV1().Services(appNamespace).Watch(ctx, sel)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	at := make(chan time.Time, 1)
	go func() {
		defer cancel()
		defer w.Stop()
		for ev := range w.ResultChan() {
			if svc, ok := ev.Object.(*corev1.Service); ok && len(svc.Status.LoadBalancer.Ingress) > 0 {
				at <- time.Now()
				return
			}
		}
	}()
	return at
}

// benchUnready: a Service with externalTrafficPolicy Local and a ready
// endpoint on every node; each trial marks one node's endpoint unready
// (a different node each time) and polls the FIB every 20 ms until that
// node's nexthop has gone, then makes it ready again.
func (kb *kubeBench) benchUnready(t *testing.T) []time.Duration {
	const name = "local"
	nodes := kb.nodeNames()
	kb.endpointSlice(t, name, nodes, nil)
	kb.cleanupService(t, name)
	kb.lbService(t, name, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	prefix := kb.address(t, name)
	var trials []time.Duration
	for i := range kubeBenchTrials {
		if err := kb.r.WaitFIB(t.Context(), prefix, kb.hops, convergeTimeout); err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		n := kb.Nodes()[i%len(nodes)]
		start := time.Now()
		kb.endpointSlice(t, name, nodes, []string{n.Name()})
		trials = append(trials, kb.pollHopGone(t, prefix, n.Addr4(), start, convergeTimeout))
		kb.endpointSlice(t, name, nodes, nil)
	}
	kb.deleteService(t, name)
	if _, err := kb.waitPoolRoutes(t.Context(), 0, convergeTimeout); err != nil {
		t.Fatal(err)
	}
	return trials
}

// benchScale: each trial first creates kubeScaleServices EndpointSlices,
// then, from start, the Services, 16 at a time, and polls the router's
// FIB every 100 ms until it holds every one of them with three nexthops.
// It returns the times until the last Service was created and until all
// were in the FIB; between trials everything is deleted again.
func (kb *kubeBench) benchScale(t *testing.T) (created, announced []time.Duration) {
	const workers = 16
	nodes := kb.nodeNames()
	for trial := range kubeScaleTrials {
		names := make([]string, kubeScaleServices)
		for i := range names {
			names[i] = fmt.Sprintf("s%d-%d", trial, i)
		}
		if err := parallel(t.Context(), workers, names, func(ctx context.Context, name string) error {
			return kb.putEndpointSlice(ctx, name, nodes, nil)
		}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := parallel(t.Context(), workers, names, func(ctx context.Context, name string) error {
			return kb.createService(ctx, name, nil)
		}); err != nil {
			t.Fatal(err)
		}
		created = append(created, time.Since(start))
		if _, err := kb.waitPoolRoutes(t.Context(), kubeScaleServices, 5*time.Minute); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		announced = append(announced, time.Since(start))
		if err := parallel(t.Context(), workers, names, func(ctx context.Context, name string) error {
			return kb.admin.CoreV1().Services(appNamespace).Delete(ctx, name, metav1.DeleteOptions{})
		}); err != nil {
			t.Fatal(err)
		}
		err := kb.admin.DiscoveryV1().EndpointSlices(appNamespace).DeleteCollection(t.Context(), metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: "bench=kube"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kb.waitPoolRoutes(t.Context(), 0, 5*time.Minute); err != nil {
			t.Fatalf("trial %d: Services deleted: %v", trial, err)
		}
	}
	return created, announced
}

// parallel runs do on every item, workers at a time, and returns the
// first error.
func parallel(ctx context.Context, workers int, items []string, do func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range workers {
		wg.Go(func() {
			for item := range work {
				if err := do(ctx, item); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	for _, item := range items {
		select {
		case work <- item:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return first
}

// benchNodeLoss: a Service announced by every node; each trial cuts a
// node (a different one each time, all its packets dropped, as the BFD
// node-loss benchmark does) and polls the FIB every 10 ms until its
// nexthop has gone, then heals it and waits for it to come back.
func (kb *kubeBench) benchNodeLoss(t *testing.T, trials int) []time.Duration {
	const name = "steady"
	kb.endpointSlice(t, name, kb.nodeNames(), nil)
	kb.cleanupService(t, name)
	kb.lbService(t, name, nil)
	prefix := kb.address(t, name)
	var out []time.Duration
	for i := range trials {
		if err := kb.r.WaitFIB(t.Context(), prefix, kb.hops, kubeRecoverTimeout); err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		n := kb.Nodes()[i%len(kb.Nodes())]
		if kb.tool == toolVipd {
			if _, err := kb.r.WaitBFD(t.Context(), n.Addr4(), false, testnet.BFDUp, convergeTimeout); err != nil {
				t.Fatal(err)
			}
		}
		cut := dropAll(t, n)
		out = append(out, kb.pollHopGone(t, prefix, n.Addr4(), cut, 3*time.Minute))
		if o, err := n.Exec(t.Context(), "nft", "delete", "table", "inet", "vtcut"); err != nil {
			t.Fatalf("heal %s: %v\n%s", n.Name(), err, o)
		}
	}
	return out
}

// address waits (bounded) for the Service's address in its status and
// returns it as a host route.
func (kb *kubeBench) address(t *testing.T, name string) netip.Prefix {
	t.Helper()
	var got netip.Addr
	err := poll(t.Context(), convergeTimeout, 100*time.Millisecond, func(ctx context.Context) error {
		svc, err := kb.admin.CoreV1().Services(appNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil {
				got = a
				return nil
			}
		}
		return fmt.Errorf("Service %s has no address in its status", name)
	})
	if err != nil {
		t.Fatal(err)
	}
	return netip.PrefixFrom(got, got.BitLen())
}

// pollHopGone polls the router's FIB every 10 ms (bounded) until hop has
// left prefix's route, and returns the time since start.
func (kb *kubeBench) pollHopGone(t *testing.T, prefix netip.Prefix, hop netip.Addr, start time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for time.Since(start) < bound {
		hops, err := kb.r.FIB(t.Context(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(hops, hop) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never left %s's route within %v", hop, prefix, bound)
	return 0
}

// waitPoolRoutes polls the router's FIB every 100 ms until it holds
// exactly want routes inside the pool, each through every node, and no
// other route in the pool; it returns them.
func (kb *kubeBench) waitPoolRoutes(ctx context.Context, want int, bound time.Duration) (map[netip.Prefix][]netip.Addr, error) {
	return kb.waitPoolRoutesEvery(ctx, want, bound, 100*time.Millisecond)
}

func (kb *kubeBench) waitPoolRoutesEvery(ctx context.Context, want int, bound, every time.Duration) (map[netip.Prefix][]netip.Addr, error) {
	var routes map[netip.Prefix][]netip.Addr
	err := poll(ctx, bound, every, func(ctx context.Context) error {
		var err error
		if routes, err = kb.poolFIB(ctx); err != nil {
			return err
		}
		full := 0
		for _, hops := range routes {
			if slices.Equal(hops, kb.hops) {
				full++
			}
		}
		if full != want || len(routes) != want {
			return fmt.Errorf("the router's FIB has %d routes in %s, %d of them through all %d nodes; want %d through all",
				len(routes), kb.pool, full, len(kb.hops), want)
		}
		return nil
	})
	return routes, err
}

// poolFIB reads every route inside the pool from the router's kernel FIB
// in one `ip -json route` call, with each route's sorted gateways.
func (kb *kubeBench) poolFIB(ctx context.Context) (map[netip.Prefix][]netip.Addr, error) {
	out, err := kb.r.Exec(ctx, "ip", "-json", "route", "show", "root", kb.pool.String())
	if err != nil {
		return nil, fmt.Errorf("ip route: %w", err)
	}
	return parsePoolFIB([]byte(out))
}

// parsePoolFIB parses `ip -json route` output of BIRD's routes: single
// path or multipath (BIRD installs no nexthop objects).
func parsePoolFIB(data []byte) (map[netip.Prefix][]netip.Addr, error) {
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(data, &routes); err != nil {
		return nil, fmt.Errorf("ip -json route: %w", err)
	}
	out := map[netip.Prefix][]netip.Addr{}
	for _, r := range routes {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, err2 := netip.ParseAddr(r.Dst)
			if err2 != nil {
				return nil, fmt.Errorf("ip -json route: dst %q: %w", r.Dst, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		gws := []string{r.Gateway}
		for _, h := range r.Nexthops {
			gws = append(gws, h.Gateway)
		}
		var hops []netip.Addr
		for _, g := range gws {
			if g == "" {
				continue
			}
			a, err := netip.ParseAddr(g)
			if err != nil {
				return nil, fmt.Errorf("ip -json route: gateway %q: %w", g, err)
			}
			hops = append(hops, a)
		}
		slices.SortFunc(hops, func(a, b netip.Addr) int { return a.Compare(b) })
		out[p] = slices.Compact(hops)
	}
	return out, nil
}

// metallbVersion reads the VERSION file build.sh writes.
func metallbVersion(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		t.Fatalf("%s: %v (set %s to what test/metallb/build.sh prints)", dir, err, metallbEnv)
	}
	return strings.TrimSpace(string(b)) + " (native BGP)"
}

// kubeAPIServerVersion is the version of the benchmark's kube-apiserver.
func kubeAPIServerVersion() string {
	return "kube-apiserver " + programVersion(filepath.Join(os.Getenv(worldtest.AssetsEnv), "kube-apiserver"), "--version")
}
