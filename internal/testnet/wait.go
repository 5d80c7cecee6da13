package testnet

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often WaitFor retries; far below any test's budget.
const pollInterval = 100 * time.Millisecond

// WaitFor calls check until it returns nil, every pollInterval, for at most
// timeout or until ctx ends. On failure the error wraps check's last error.
func WaitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		// A check cut short by the deadline says less than the one before.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, last)
		case <-ticker.C:
		}
	}
}
