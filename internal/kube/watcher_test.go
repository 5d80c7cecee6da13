package kube

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// These tests run the Watcher against a real API server and etcd: the
// informers, the status writes, the Events and the Lease are the real
// thing. The end-to-end tests add routers, namespaces and RBAC.

const waitBound = 30 * time.Second

type watcherRig struct {
	client kubernetes.Interface
	opts   Options
}

func newRig(t *testing.T) *watcherRig {
	cp := worldtest.KubeAPI(t)
	client, err := kubernetes.NewForConfig(cp.Admin())
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vipd"}}
	if _, err := client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &watcherRig{client: client, opts: Options{
		Config:  config.Kubernetes{Namespace: "vipd", ExternalIPs: true, LoadBalancers: true, LeaseDuration: 3 * time.Second},
		Allowed: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")},
		Pools: []config.Pool{
			{Name: "default", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.64/29"), netip.MustParsePrefix("2001:db8::40/126")}},
			{Name: "one", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.80/32")}},
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
}

// start runs a Watcher for node until the returned stop is called (or the
// test ends).
func (r *watcherRig) start(t *testing.T, node string) (*Watcher, func()) {
	t.Helper()
	opts := r.opts
	opts.Config.NodeName = node
	w, err := newWatcher(r.client, r.client.CoreV1(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return w, stop
}

func (r *watcherRig) node(t *testing.T, name string) {
	t.Helper()
	n, err := r.client.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := r.client.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (r *watcherRig) service(t *testing.T, name string, edit func(*corev1.Service)) {
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	edit(s)
	if _, err := r.client.CoreV1().Services("default").Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service %s: %v", name, err)
	}
	ready := true
	node := "n1"
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := r.client.DiscoveryV1().EndpointSlices("default").Create(t.Context(), sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (r *watcherRig) ingress(t *testing.T, name string) []netip.Addr {
	t.Helper()
	var got []netip.Addr
	waitUntil(t, "an address in "+name+"'s status", func() bool {
		s, err := r.client.CoreV1().Services("default").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		got = ingressAddrs(s)
		return len(got) > 0
	})
	return got
}

func (r *watcherRig) event(t *testing.T, service, reason string) corev1.Event {
	t.Helper()
	var ev corev1.Event
	waitUntil(t, "Event "+reason+" on "+service, func() bool {
		evs, err := r.client.CoreV1().Events("default").List(t.Context(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + service})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == reason {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitBound, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func served(w *Watcher, name string) (Service, bool) {
	i := slices.IndexFunc(w.Services(), func(s Service) bool { return s.Name == name })
	if i < 0 {
		return Service{}, false
	}
	return w.Services()[i], true
}

func TestWatcherAgainstAPIServer(t *testing.T) {
	r := newRig(t)
	r.node(t, "n1")
	w1, stop1 := r.start(t, "n1")
	w2, stop2 := r.start(t, "n2") // no Node object: serves nothing

	r.service(t, "web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1", "203.0.113.1"} })
	waitUntil(t, "n1 announces web", func() bool {
		s, ok := served(w1, "default/web")
		return ok && s.Announce && slices.Equal(s.Addrs, addrs("192.0.2.1")) && len(s.Refused) == 1
	})
	if ev := r.event(t, "web", "AddressNotAllowed"); ev.Source.Host != "n1" {
		t.Errorf("AddressNotAllowed from %q, want n1", ev.Source.Host)
	}
	waitUntil(t, "n2 holds web back: its Node is unknown", func() bool {
		s, ok := served(w2, "default/web")
		return ok && !s.Announce && s.Reason == ReasonNodeUnknown
	})

	lb := func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }
	r.service(t, "a", lb)
	r.service(t, "b", lb)
	a, b := r.ingress(t, "a"), r.ingress(t, "b")
	if len(a) != 1 || len(b) != 1 || a[0] == b[0] {
		t.Fatalf("a got %v, b got %v: want one address each, different", a, b)
	}
	r.event(t, "a", "AddressAllocated")
	waitUntil(t, "n1 serves a's address", func() bool {
		s, ok := served(w1, "default/a")
		return ok && s.Announce && slices.Equal(s.Addrs, a)
	})

	r.service(t, "full1", func(s *corev1.Service) { lb(s); s.Annotations[AnnotationPool] = "one" })
	if got := r.ingress(t, "full1"); !slices.Equal(got, addrs("192.0.2.80")) {
		t.Fatalf("full1 got %v, want 192.0.2.80", got)
	}
	r.service(t, "full2", func(s *corev1.Service) { lb(s); s.Annotations[AnnotationPool] = "one" })
	r.event(t, "full2", string(ReasonPoolExhausted))
	waitUntil(t, "full2's status condition says why it has no address", func() bool {
		s, err := r.client.CoreV1().Services("default").Get(t.Context(), "full2", metav1.GetOptions{})
		if err != nil {
			return false
		}
		c := meta.FindStatusCondition(s.Status.Conditions, ConditionAllocated)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(ReasonPoolExhausted)
	})
	s, err := r.client.CoreV1().Services("default").Get(t.Context(), "a", metav1.GetOptions{})
	if c := meta.FindStatusCondition(s.Status.Conditions, ConditionAllocated); err != nil || c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("a's %s condition: %+v (%v), want True", ConditionAllocated, c, err)
	}

	// A bad edit of a's annotation is reported, and a keeps its address.
	s, err = r.client.CoreV1().Services("default").Get(t.Context(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Annotations = map[string]string{AnnotationAddresses: "not-an-address"}
	if _, err := r.client.CoreV1().Services("default").Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.event(t, "a", string(ReasonInvalidRequest))
	if got := r.ingress(t, "a"); !slices.Equal(got, a) {
		t.Errorf("a bad annotation moved a from %v to %v", a, got)
	}
	r.service(t, "d", lb)
	if d := r.ingress(t, "d"); slices.Contains(d, a[0]) {
		t.Errorf("d got %v, a's address, while a's annotation was bad", d)
	}

	r.service(t, "dual", func(s *corev1.Service) {
		lb(s)
		p := corev1.IPFamilyPolicyPreferDualStack
		s.Spec.IPFamilyPolicy = &p
	})
	// The test API server's service CIDRs are dual stack, so a Service
	// that prefers dual stack gets both families, in spec.ipFamilies order.
	if got := r.ingress(t, "dual"); len(got) != 2 || !got[0].Is4() || !got[1].Is6() {
		t.Errorf("dual got %v, want an IPv4 and an IPv6 address", got)
	}

	// The allocator's Lease moves when its holder stops; no address moves.
	waitUntil(t, "both agree on the allocator", func() bool {
		return w1.Status().Leader != "" && w1.Status().Leader == w2.Status().Leader
	})
	stop, other := stop1, w2
	if w2.Status().IsLeader {
		stop, other = stop2, w1
	}
	stop()
	waitUntil(t, "the other node takes the allocator's lease", func() bool { return other.Status().IsLeader })
	r.service(t, "c", lb)
	c := r.ingress(t, "c")
	if slices.Contains(slices.Concat(a, b), c[0]) {
		t.Errorf("the new allocator gave c %v, already a's %v or b's %v", c, a, b)
	}
	for name, want := range map[string][]netip.Addr{"a": a, "b": b} {
		if got := r.ingress(t, name); !slices.Equal(got, want) {
			t.Errorf("%s moved from %v to %v with the new allocator", name, want, got)
		}
	}
}

// memCache is a Cache in memory.
type memCache struct {
	mu   sync.Mutex
	data []byte
}

func (c *memCache) Load() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data, nil
}

func (c *memCache) Save(v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data = v
	return nil
}

func (c *memCache) holds(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Contains(string(c.data), s)
}

// TestWatcherLocalCopy: what a node serves is saved; a restarted watcher
// that cannot reach the API server serves the saved copy (its own node's
// only), and the first list replaces it and the copy.
func TestWatcherLocalCopy(t *testing.T) {
	r := newRig(t)
	r.node(t, "n1")
	c := &memCache{}
	r.opts.Cache = c
	w, stop := r.start(t, "n1")
	r.service(t, "web", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1"} })
	waitUntil(t, "n1 announces web", func() bool { s, ok := served(w, "default/web"); return ok && s.Announce })
	waitUntil(t, "web in the local copy", func() bool { return c.holds(`"default/web"`) })
	stop()

	// An API server that does not answer: only the local copy is served.
	unreachable, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]bool{"n1": true, "n2": false} {
		opts := r.opts
		opts.Config.NodeName = node
		cut, err := newWatcher(unreachable, unreachable.CoreV1(), opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = cut.Run(ctx) })
		s, ok := served(cut, "default/web")
		if ok != want || ok && (!s.Announce || !slices.Equal(s.Addrs, addrs("192.0.2.1"))) {
			t.Errorf("%s cut off: serves web %v (%+v), want %v", node, ok, s, want)
		}
		cancel()
		wg.Wait()
	}

	if err := r.client.CoreV1().Services("default").Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again, _ := r.start(t, "n1")
	waitUntil(t, "the first list to replace the local copy", func() bool {
		_, ok := served(again, "default/web")
		return !ok && again.Status().Synced
	})
	waitUntil(t, "web gone from the local copy", func() bool { return !c.holds(`"default/web"`) })
}
