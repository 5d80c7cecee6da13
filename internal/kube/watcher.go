package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/store"
)

// Options configure a Watcher.
type Options struct {
	Config  config.Kubernetes
	Allowed []netip.Prefix // bgp.allowed_prefixes
	Pools   []config.Pool
	Log     *slog.Logger
	// OnChange is called, without blocking, when Services may have
	// changed: the agent's Wake.
	OnChange func()
	// Cache, if set, keeps a copy of the Services this node serves,
	// served after a restart until the first list (cache.go).
	Cache Cache
}

// Watcher is the Kubernetes source: it watches Services, EndpointSlices
// and this node's Node, and says which Service addresses this node serves.
// One Watcher per cluster is elected to allocate LoadBalancer addresses.
type Watcher struct {
	client    kubernetes.Interface
	events    typedcorev1.EventsGetter
	node      string
	namespace string
	lease     time.Duration
	log       *slog.Logger
	onChange  func()

	factory     informers.SharedInformerFactory
	nodeFactory informers.SharedInformerFactory // this node's Node only
	services    corelisters.ServiceLister
	slices      cache.Indexer
	nodes       corelisters.NodeLister
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	allocWake   chan struct{}
	cache       Cache         // nil: no local copy
	unsaved     chan struct{} // the plan changed since the last save

	mu       sync.Mutex
	policy   policy
	pools    []config.Pool
	synced   bool
	dirty    bool
	planned  []Service
	planOnce bool // planned holds a plan since the first list
	// restored is the local copy served until the first list.
	restored []Service
	refused  map[string]bool // "service address" pairs already reported in an Event
	conn     Connection
	leader   string
	// allocated is the last allocation (addresses or failure) reported
	// for each Service, so unchanged passes record no Event.
	allocated map[string]string
}

// Connection is the watch's health as status and metrics show it.
type Connection struct {
	Connected bool
	Since     time.Time // when Connected last changed
	Error     string    // the last error while disconnected
}

// Status is the Kubernetes source as `vipd status` shows it.
type Status struct {
	Node       string
	Synced     bool // the caches hold a full list
	LocalCopy  bool // until then the local copy is served (cache.go)
	Connection Connection
	Leader     string // the allocator's node, "" if unknown
	IsLeader   bool
	Services   int
}

const (
	// serviceNameLabel ties an EndpointSlice to its Service.
	serviceNameLabel = discoveryv1.LabelServiceName
	byService        = "service"
	leaseName        = "vipd-allocator"
	probeInterval    = 5 * time.Second
	eventComponent   = "vipd"
)

var klogOnce sync.Once

// New builds a Watcher; it does not contact the API server.
func New(opts Options) (*Watcher, error) {
	restCfg, err := restConfig(opts.Config.Kubeconfig)
	if err != nil {
		return nil, err
	}
	restCfg.UserAgent = "vipd"
	// Protobuf, as Kubernetes' own components speak it: smaller watches
	// and faster decoding than JSON for the built-in types vipd reads.
	restCfg.ContentType = "application/vnd.kubernetes.protobuf"
	restCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	// Events get a client, and so a rate limit, of their own: a thousand
	// new Services make thousands of Events, which must not hold up the
	// allocator's status writes. Events beyond the recorder's queue are
	// dropped, as client-go does.
	eventCfg := rest.CopyConfig(restCfg)
	eventCfg.QPS, eventCfg.Burst = 20, 100
	events, err := kubernetes.NewForConfig(eventCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// The allocator writes one status per Service: the default 5 QPS would
	// take minutes over a thousand.
	restCfg.QPS, restCfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// client-go logs through klog, a process-wide logger: send it to our
	// structured log, once.
	klogOnce.Do(func() { klog.SetSlogLogger(opts.Log.With("component", "client-go")) })
	return newWatcher(client, events.CoreV1(), opts)
}

func newWatcher(client kubernetes.Interface, events typedcorev1.EventsGetter, opts Options) (*Watcher, error) {
	node := opts.Config.NodeName
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("kubernetes.node_name: unset, and no host name: %w", err)
		}
		node = h
	}
	ns := opts.Config.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "vipd"
	}
	log := opts.Log.With("node", node)

	w := &Watcher{
		client:    client,
		events:    events,
		node:      node,
		namespace: ns,
		lease:     opts.Config.LeaseDuration,
		log:       log,
		onChange:  opts.OnChange,
		factory:   informers.NewSharedInformerFactory(client, 0),
		nodeFactory: informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
			})),
		allocWake: make(chan struct{}, 1),
		cache:     opts.Cache,
		unsaved:   make(chan struct{}, 1),
		policy: policy{
			externalIPs:   opts.Config.ExternalIPs,
			loadBalancers: opts.Config.LoadBalancers,
			class:         opts.Config.LoadBalancerClass,
			allowed:       slices.Clone(opts.Allowed),
		},
		pools:     slices.Clone(opts.Pools),
		dirty:     true,
		refused:   make(map[string]bool),
		allocated: make(map[string]string),
	}
	if w.onChange == nil {
		w.onChange = func() {}
	}
	if w.cache != nil {
		w.restore()
	}
	svcInformer := w.factory.Core().V1().Services()
	w.services = svcInformer.Lister()
	sliceInformer := w.factory.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInformer.AddIndexers(cache.Indexers{byService: sliceService}); err != nil {
		return nil, fmt.Errorf("endpointslice index: %w", err)
	}
	w.slices = sliceInformer.GetIndexer()
	nodeInformer := w.nodeFactory.Core().V1().Nodes()
	w.nodes = nodeInformer.Lister()

	onService := w.changed(true)
	onOther := w.changed(false)
	for _, reg := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svcInformer.Informer(), onService},
		{sliceInformer, onOther},
		{nodeInformer.Informer(), onOther},
	} {
		if _, err := reg.inf.AddEventHandler(reg.h); err != nil {
			return nil, fmt.Errorf("informer handler: %w", err)
		}
		if err := reg.inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
			return nil, fmt.Errorf("watch error handler: %w", err)
		}
	}

	w.broadcaster = record.NewBroadcaster(record.WithContext(context.Background()))
	w.recorder = w.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: node})
	return w, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no kubeconfig set and not running in a pod: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// sliceService indexes an EndpointSlice by its Service's namespace/name.
func sliceService(obj any) ([]string, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := sl.Labels[serviceNameLabel]
	if name == "" {
		return nil, nil
	}
	return []string{sl.Namespace + "/" + name}, nil
}

// changed returns an informer handler that marks the plan stale and wakes
// the agent (and the allocator, for Services). It runs on the informer's
// goroutine, so it only flips flags and sends without blocking.
func (w *Watcher) changed(service bool) cache.ResourceEventHandler {
	note := func() {
		w.mu.Lock()
		w.dirty = true
		w.mu.Unlock()
		if service {
			select {
			case w.allocWake <- struct{}{}:
			default:
			}
		}
		w.onChange()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { note() },
		UpdateFunc: func(any, any) { note() },
		DeleteFunc: func(any) { note() },
	}
}

// watchError runs when a list or watch fails: the caches keep what they
// knew, so nothing is withdrawn; status says the connection is down.
func (w *Watcher) watchError(_ context.Context, _ *cache.Reflector, err error) {
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return // a routine relist, not a lost server
	}
	w.setConnected(false, err)
}

// Run watches until ctx ends. It serves nothing until the caches hold a
// full list; after that, a lost API server leaves the last state in place.
// It returns nil: losing the API server is not an error that stops vipd.
func (w *Watcher) Run(ctx context.Context) error {
	w.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: w.events.Events("")})
	defer w.broadcaster.Shutdown()
	w.factory.Start(ctx.Done())
	w.nodeFactory.Start(ctx.Done())
	defer w.factory.Shutdown()
	defer w.nodeFactory.Shutdown()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { w.probe(ctx) })
	if w.cache != nil {
		// What plan decides is saved at most once a second.
		wg.Go(func() { store.KeepSaved(ctx, w.unsaved, w.save) })
	}

	w.log.Info("kubernetes: waiting for the first list", "event", "kubernetes_sync")
	for _, f := range []informers.SharedInformerFactory{w.factory, w.nodeFactory} {
		for _, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return nil // stopped before the first list
			}
		}
	}
	w.mu.Lock()
	w.synced, w.dirty, w.restored = true, true, nil
	w.mu.Unlock()
	w.setConnected(true, nil)
	w.log.Info("kubernetes: caches synced", "event", "kubernetes_synced")
	w.onChange()

	if w.policy.loadBalancers {
		wg.Go(func() { w.elect(ctx) })
	}
	<-ctx.Done()
	return nil
}

// probe asks the API server whether it is ready, so status notices a lost
// connection even when no watch has failed yet, and notices its return.
func (w *Watcher) probe(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		err := w.client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(pctx).Error()
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.setConnected(err == nil, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Watcher) setConnected(ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok == w.conn.Connected && (ok || w.conn.Error != "") {
		return
	}
	changed := ok != w.conn.Connected
	w.conn.Connected = ok
	w.conn.Error = ""
	if err != nil && !ok {
		w.conn.Error = err.Error()
	}
	if !changed {
		return
	}
	w.conn.Since = time.Now()
	if ok {
		w.log.Info("kubernetes: API server reachable", "event", "kubernetes_connected")
	} else {
		w.log.Warn("kubernetes: API server unreachable; serving the last state known", "event", "kubernetes_disconnected", "err", err)
	}
}

// served is what Services last returned. w.mu is held.
func (w *Watcher) served() []Service {
	if !w.synced {
		return w.restored
	}
	return w.planned
}

// Services returns what this node serves, from the caches. Before the
// first full list it returns the local copy, if there is one, else
// nothing.
func (w *Watcher) Services() []Service {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.synced && w.dirty {
		w.dirty = false
		planned := plan(w.view(), w.policy)
		if !w.planOnce || !reflect.DeepEqual(planned, w.planned) {
			select {
			case w.unsaved <- struct{}{}:
			default:
			}
		}
		w.planned, w.planOnce = planned, true
		w.reportRefusals(w.planned)
	}
	return w.served()
}

// view reads the caches. w.mu is held.
func (w *Watcher) view() view {
	v := view{nodeName: w.node, slices: make(map[string][]*discoveryv1.EndpointSlice)}
	if n, err := w.nodes.Get(w.node); err == nil {
		v.node = n
	}
	svcs, _ := w.services.List(labels.Everything())
	for _, svc := range svcs {
		if len(svc.Spec.ExternalIPs) == 0 && len(svc.Status.LoadBalancer.Ingress) == 0 {
			continue
		}
		v.services = append(v.services, svc)
		key := svc.Namespace + "/" + svc.Name
		objs, _ := w.slices.ByIndex(byService, key)
		for _, o := range objs {
			if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
				v.slices[key] = append(v.slices[key], sl)
			}
		}
	}
	return v
}

// reportRefusals records an Event on a Service for each address it asks
// for that vipd may not serve, once per address. w.mu is held; recording
// does not block.
func (w *Watcher) reportRefusals(planned []Service) {
	seen := make(map[string]bool)
	for _, s := range planned {
		for _, r := range s.Refused {
			key := s.Name + " " + r.Addr.String()
			seen[key] = true
			if w.refused[key] {
				continue
			}
			if svc := w.service(s.Name); svc != nil {
				w.recorder.Eventf(svc, corev1.EventTypeWarning, "AddressNotAllowed", "node %s will not serve %s", w.node, r.Detail)
			}
		}
	}
	w.refused = seen
}

func (w *Watcher) service(key string) *corev1.Service {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := w.services.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	return svc
}

// Announced records an Event on the Service when this node starts or
// stops announcing the addresses it serves of it (refused ones are not
// among them). It does not block: the agent calls it from its loop.
func (w *Watcher) Announced(service string, announced bool, why string) {
	svc := w.service(service)
	if svc == nil {
		return
	}
	w.mu.Lock()
	i := slices.IndexFunc(w.planned, func(s Service) bool { return s.Name == service })
	var addrs []netip.Addr
	if i >= 0 {
		addrs = w.planned[i].Addrs
	}
	w.mu.Unlock()
	if announced {
		w.recorder.Eventf(svc, corev1.EventTypeNormal, "Announced", "node %s announces %s: %s", w.node, addrString(addrs), why)
		return
	}
	w.recorder.Eventf(svc, corev1.EventTypeNormal, "Withdrawn", "node %s withdrew %s: %s", w.node, addrString(addrs), why)
}

// SetPolicy applies a reloaded config's allowed prefixes and pools.
func (w *Watcher) SetPolicy(allowed []netip.Prefix, pools []config.Pool) {
	w.mu.Lock()
	w.policy.allowed = slices.Clone(allowed)
	w.pools = slices.Clone(pools)
	w.dirty = true
	w.mu.Unlock()
	select {
	case w.allocWake <- struct{}{}:
	default:
	}
	w.onChange()
}

// Status reports the source's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Status{
		Node:       w.node,
		Synced:     w.synced,
		LocalCopy:  !w.synced && w.restored != nil,
		Connection: w.conn,
		Leader:     w.leader,
		IsLeader:   w.leader == w.node,
		Services:   len(w.served()),
	}
}
