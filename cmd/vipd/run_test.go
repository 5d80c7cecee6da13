package main

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
)

// stuckReloader's Reload blocks until its context ends, as a reload stuck
// on a peer or a file would.
type stuckReloader struct {
	started chan struct{}
}

func (r stuckReloader) Reload(ctx context.Context) (api.ReloadResult, error) {
	r.started <- struct{}{}
	<-ctx.Done()
	return api.ReloadResult{}, ctx.Err()
}

func (stuckReloader) Hurry() {}

// A stop signal must start the shutdown at once, even while a reload is
// stuck: shutdown never waits for a reload.
func TestStopSignalDuringStuckReload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stopping := make(chan struct{})
	r := stuckReloader{started: make(chan struct{}, 4)}
	stop := handleSignals(ctx, func() { close(stopping); cancel() }, r, slog.New(slog.DiscardHandler))
	defer stop()
	defer cancel() // before stop, which waits for the reload

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.started:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP started no reload")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopping:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM during a stuck reload did not start the shutdown")
	}
}
