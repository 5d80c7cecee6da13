package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	var reqs []Request
	for _, svc := range svcs {
		if !pol.ours(svc) {
			continue
		}
		req, bad := request(svc)
		key := req.Service
		byKey[key] = svc
		if bad != nil {
			w.reportAllocation(svc, nil, bad)
			continue
		}
		reqs = append(reqs, req)
	}
	for _, a := range Allocate(pools, reqs, nil) {
		svc := byKey[a.Service]
		if a.Err != nil {
			w.reportAllocation(svc, nil, a.Err)
		}
		if slices.Equal(a.Addrs, ingressAddrs(svc)) {
			if a.Err == nil {
				w.knownAllocation(svc, a.Addrs)
			}
			continue
		}
		if err := w.writeIngress(ctx, svc, a.Addrs); err != nil {
			if ctx.Err() == nil {
				w.log.Warn("kubernetes: status write failed", "event", "allocation", "service", a.Service, "err", err)
			}
			retry = true
			continue
		}
		if a.Err == nil {
			w.reportAllocation(svc, a.Addrs, nil)
		}
	}
	return retry
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

// writeIngress sets the Service's status.loadBalancer.ingress to addrs.
func (w *Watcher) writeIngress(ctx context.Context, svc *corev1.Service, addrs []netip.Addr) error {
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	for _, a := range addrs {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a.String()})
	}
	_, err := w.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{FieldManager: "vipd"})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile: its address is free
	}
	return err
}

// knownAllocation notes addresses a Service already has in its status, so
// a new leader does not announce them again as new.
func (w *Watcher) knownAllocation(svc *corev1.Service, addrs []netip.Addr) {
	w.mu.Lock()
	w.allocated[svc.Namespace+"/"+svc.Name] = fmt.Sprint(addrs)
	w.mu.Unlock()
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
// quiet.
func (w *Watcher) reportAllocation(svc *corev1.Service, addrs []netip.Addr, failure *Error) {
	key := svc.Namespace + "/" + svc.Name
	var now string
	if failure != nil {
		now = failure.Error()
	} else {
		now = fmt.Sprint(addrs)
	}
	w.mu.Lock()
	same := w.allocated[key] == now
	w.allocated[key] = now
	w.mu.Unlock()
	if same {
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
