package kube

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// elect runs for the allocator's Lease until ctx ends. Only the holder
// allocates; every node reads the addresses from the Services' status, so
// a change of leader changes no address.
func (w *Watcher) elect(ctx context.Context) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: leaseName, Namespace: w.namespace},
		Client:     w.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: w.node},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			Name:            leaseName,
			LeaseDuration:   w.lease,
			RenewDeadline:   w.lease * 2 / 3,
			RetryPeriod:     w.lease / 5,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: w.allocateWhileLeading,
				OnStoppedLeading: func() {
					w.log.Info("kubernetes: no longer the allocator", "event", "allocator_stopped")
				},
				OnNewLeader: func(identity string) {
					w.mu.Lock()
					w.leader = identity
					w.mu.Unlock()
					w.log.Info("kubernetes: allocator elected", "event", "allocator_elected", "leader", identity)
				},
			},
		})
		if err != nil {
			w.log.Error("kubernetes: leader election", "err", err)
			return
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
		if ctx.Err() == nil {
			w.mu.Lock()
			w.leader = ""
			w.mu.Unlock()
			sleepCtx(ctx, w.lease/5)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
