package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The daemon must not link the testing package: it registers test flags
// and carries test-only code into a production binary.
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	// go test runs with the go command's own GOROOT/bin first on PATH.
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(deps), out)
	}
	for _, banned := range []string{"testing", "github.com/vipd/vipd/internal/testnet/worldtest"} {
		if slices.Contains(deps, banned) {
			t.Errorf("vipd links %s", banned)
		}
	}
}
