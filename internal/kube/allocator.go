package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The annotations a LoadBalancer Service may carry for vipd.
const (
	AnnotationPool      = "vipd.io/pool"
	AnnotationAddresses = "vipd.io/addresses"
	AnnotationShare     = "vipd.io/allow-shared-ip"
)

// allocRetry is how soon a pass that failed to write a status runs again.
const allocRetry = time.Second

// allocateWhileLeading assigns LoadBalancer addresses until ctx ends (the
// Lease is lost or vipd stops): a pass at the start and after every change
// to a Service or to the pools.
func (w *Watcher) allocateWhileLeading(ctx context.Context) {
	w.log.Info("kubernetes: this node allocates LoadBalancer addresses", "event", "allocator_started")
	retry := time.NewTimer(allocRetry)
	defer retry.Stop()
	for {
		retry.Stop()
		if w.allocatePass(ctx) {
			retry.Reset(allocRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.allocWake:
		case <-retry.C:
		}
	}
}

// allocatePass decides every LoadBalancer Service's addresses from the
// cache and writes the statuses that differ. Every address in use is in
// some Service's status, so the statuses are the allocator's whole state:
// a new leader starts from them and moves nothing. It reports whether a
// write failed and the pass should run again.
func (w *Watcher) allocatePass(ctx context.Context) (retry bool) {
	w.mu.Lock()
	pools := w.pools
	pol := w.policy
	w.mu.Unlock()

	svcs, err := w.services.List(labels.Everything())
	if err != nil {
		return true
	}
	byKey := make(map[string]*corev1.Service)
	defer w.forgetAllocations(byKey)
	invalid := make(map[string]*Error)
	var reqs []Request
	for _, svc := range svcs {
		if !pol.ours(svc) {
			continue
		}
		req, bad := request(svc)
		byKey[req.Service] = svc
		if bad != nil {
			// It still holds what it has, so no other Service takes that
			// while the annotation is being fixed.
			invalid[req.Service] = bad
			req.Want, req.Pool = nil, ""
		}
		reqs = append(reqs, req)
	}
	for _, a := range Allocate(pools, reqs, nil) {
		svc := byKey[a.Service]
		if bad := invalid[a.Service]; bad != nil {
			held := ingressAddrs(svc)
			a.Addrs = slices.DeleteFunc(a.Addrs, func(x netip.Addr) bool { return !slices.Contains(held, x) })
			a.Err = bad
		}
		if err := w.settle(ctx, svc, a); err != nil {
			if ctx.Err() == nil {
				w.log.Warn("kubernetes: status write failed", "event", "allocation", "service", a.Service, "err", err)
			}
			retry = true
		}
	}
	return retry
}

// ConditionAllocated is the type of the condition the allocator keeps in
// a LoadBalancer Service's status: whether it has its addresses, and if
// not, why (an AllocReason).
const ConditionAllocated = "vipd.io/AddressAllocated"

// settle makes the Service's status say what a, the allocation, decided,
// and records an Event when that changed.
func (w *Watcher) settle(ctx context.Context, svc *corev1.Service, a Assignment) error {
	want := svc.DeepCopy()
	want.Status.LoadBalancer.Ingress = nil
	for _, addr := range a.Addrs {
		want.Status.LoadBalancer.Ingress = append(want.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: addr.String()})
	}
	cond := metav1.Condition{Type: ConditionAllocated, Status: metav1.ConditionTrue, Reason: "Allocated",
		Message: "assigned " + addrString(a.Addrs), ObservedGeneration: svc.Generation}
	if a.Err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, string(a.Err.Reason), a.Err.Message
	}
	meta.SetStatusCondition(&want.Status.Conditions, cond)
	changed := !equality.Semantic.DeepEqual(want.Status, svc.Status)
	if changed {
		_, err := w.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, want, metav1.UpdateOptions{FieldManager: "vipd"})
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: its address is free
		}
		if err != nil {
			return err
		}
	}
	w.reportAllocation(svc, a, changed)
	return nil
}

// request reads a Service's Request. A malformed annotation is the
// Service's own error, reported like an allocation failure.
func request(svc *corev1.Service) (Request, *Error) {
	req := Request{
		Service:  svc.Namespace + "/" + svc.Name,
		Pool:     svc.Annotations[AnnotationPool],
		ShareKey: svc.Annotations[AnnotationShare],
		Current:  ingressAddrs(svc),
	}
	if svc.Spec.IPFamilyPolicy != nil {
		req.Policy = FamilyPolicy(*svc.Spec.IPFamilyPolicy)
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			req.Families = append(req.Families, IPv6)
		} else {
			req.Families = append(req.Families, IPv4)
		}
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	var wanted []string
	if ip := svc.Spec.LoadBalancerIP; ip != "" {
		wanted = append(wanted, ip)
	}
	if list := svc.Annotations[AnnotationAddresses]; list != "" {
		wanted = append(wanted, strings.Split(list, ",")...)
	}
	for _, raw := range wanted {
		addr, err := netip.ParseAddr(strings.TrimSpace(raw))
		if err != nil || addr.Zone() != "" {
			return req, errorf(ReasonInvalidRequest, "annotation %s or spec.loadBalancerIP: %q is not an IP address", AnnotationAddresses, raw)
		}
		if !slices.Contains(req.Want, addr.Unmap()) {
			req.Want = append(req.Want, addr.Unmap())
		}
	}
	return req, nil
}

func ingressAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// forgetAllocations drops what was reported for Services that are gone.
func (w *Watcher) forgetAllocations(keep map[string]*corev1.Service) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key := range w.allocated {
		if _, ok := keep[key]; !ok {
			delete(w.allocated, key)
		}
	}
}

// reportAllocation records an Event when a Service's allocation changes:
// its addresses, or why it has none. Passes that change nothing stay
// quiet, and so does a new allocator's first look at a status that was
// already right.
func (w *Watcher) reportAllocation(svc *corev1.Service, a Assignment, wrote bool) {
	key := svc.Namespace + "/" + svc.Name
	addrs, failure := a.Addrs, a.Err
	now := fmt.Sprint(addrs)
	if failure != nil {
		now = failure.Error()
	}
	w.mu.Lock()
	last, known := w.allocated[key]
	w.allocated[key] = now
	w.mu.Unlock()
	if last == now || (!known && !wrote) {
		return
	}
	if failure != nil {
		w.recorder.Eventf(svc, corev1.EventTypeWarning, string(failure.Reason), "%s", failure.Message)
		w.log.Warn("kubernetes: no address for a LoadBalancer Service", "event", "allocation", "service", key,
			"reason", string(failure.Reason), "why", failure.Message)
		return
	}
	w.recorder.Eventf(svc, corev1.EventTypeNormal, "AddressAllocated", "assigned %s", addrString(addrs))
	w.log.Info("kubernetes: LoadBalancer address assigned", "event", "allocation", "service", key, "addresses", addrString(addrs))
}

func addrString(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
