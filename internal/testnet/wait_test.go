package testnet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := WaitFor(ctx, 10*time.Second, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, calls)
	}

	// A check cut short by the deadline does not hide the one before.
	err = WaitFor(ctx, 300*time.Millisecond, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
			return errors.New("have 1, want 2")
		}
	})
	if err == nil || !strings.Contains(err.Error(), "have 1, want 2") {
		t.Errorf("WaitFor = %v, want the last complete check's error", err)
	}
}

func TestWaitForFinal(t *testing.T) {
	gone := errors.New("process exited")
	calls := 0
	start := time.Now()
	err := WaitFor(context.Background(), 10*time.Second, func(context.Context) error {
		calls++
		if calls == 2 {
			return Final(gone)
		}
		return errors.New("not yet")
	})
	if !errors.Is(err, gone) || calls != 2 || time.Since(start) > 5*time.Second {
		t.Errorf("WaitFor = %v after %d calls and %v, want %v at once on the second", err, calls, time.Since(start), gone)
	}
}
