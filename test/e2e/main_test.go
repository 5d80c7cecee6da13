// Package e2e runs the real vipd binary in network namespaces against real
// BIRD 2 and FRR routers, and asserts on the routers' BGP tables and kernel
// FIBs. The tests need root; without it (or without BIRD/FRR) they skip.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vipdBin is the vipd binary under test, built once by TestMain.
var vipdBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vipd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vipdBin = filepath.Join(dir, "vipd")
	build := exec.Command("go", "build", "-race", "-o", vipdBin, "github.com/vipd/vipd/cmd/vipd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vipd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
