// Package worldtest runs testnet worlds inside Go tests. It is separate
// from testnet so that the vipd binary, which builds lab worlds with
// testnet, does not link the testing package.
package worldtest

import (
	"context"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// setupTimeout bounds building a world in New.
const setupTimeout = 2 * time.Minute

// logTailLines is how much of each process's log a failed test prints.
const logTailLines = 60

// New builds a world for a test and removes it when the test ends,
// printing the tail of every process log if the test failed. It skips the
// test as SkipUnlessAvailable does.
func New(t testing.TB, spec testnet.Spec) *testnet.World {
	t.Helper()
	SkipUnlessAvailable(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	w, err := testnet.New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testnet %s logs:\n%s", w.Prefix(), w.LogTails(logTailLines))
		}
		if err := w.Close(); err != nil {
			t.Errorf("testnet %s: close: %v", w.Prefix(), err)
		}
	})
	return w
}

// SkipUnlessAvailable skips a test that needs a world for spec in -short
// mode, or when not root. Run as root, or under CI (CI set in the
// environment), a missing program fails the test instead, naming it: a
// suite that did not run must not pass.
func SkipUnlessAvailable(t testing.TB, spec testnet.Spec) {
	t.Helper()
	if testing.Short() {
		t.Skip("testnet: skipped in -short mode")
	}
	if missing := testnet.Missing(spec); missing != "" {
		SkipOrFail(t, "testnet: "+missing)
	}
}

// SkipOrFail ends a test that cannot run for want of why (root, a
// program): it fails under CI or when run as root outside -short mode,
// where everything should be there, and skips otherwise.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if testnet.ToolsRequired() && !testing.Short() {
		t.Fatal(why)
	}
	t.Skip(why)
}
