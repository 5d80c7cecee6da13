package testnet

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pollInterval is how often WaitFor retries; far below any test's budget.
const pollInterval = 100 * time.Millisecond

// Final marks a check's error as one that waiting cannot mend (a process
// it waits for has exited): WaitFor returns it at once.
func Final(err error) error { return finalError{err} }

type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// WaitFor calls check until it returns nil, every pollInterval, for at most
// timeout or until ctx ends, or until check returns a Final error. On
// failure the error wraps check's last error.
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
		if final, ok := errors.AsType[finalError](err); ok {
			return final.error
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
