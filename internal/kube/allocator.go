package kube

import "context"

// allocateWhileLeading assigns LoadBalancer addresses until ctx ends.
func (w *Watcher) allocateWhileLeading(ctx context.Context) {
	w.log.Info("kubernetes: this node allocates LoadBalancer addresses", "event", "allocator_started")
	<-ctx.Done()
}
