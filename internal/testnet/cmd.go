package testnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// run runs a short command to completion and returns its stdout. The error
// names the command and carries its stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	return runInput(ctx, "", name, args...)
}

// runInput is run with stdin.
func runInput(ctx context.Context, stdin, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// runIn runs a short command inside namespace ns.
func runIn(ctx context.Context, ns, name string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// ipBatch runs ip commands (without the leading "ip") in namespace ns in one
// process, stopping at the first failure.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	_, err := runInput(ctx, strings.Join(cmds, "\n")+"\n", "ip", "-n", ns, "-batch", "-")
	return err
}

// sysctl sets kernel parameters inside namespace ns.
func sysctl(ctx context.Context, ns string, settings ...string) error {
	_, err := runIn(ctx, ns, "sysctl", append([]string{"-q", "-w"}, settings...)...)
	return err
}

// Missing says why a world for spec cannot be built here ("" if it can):
// not root, or a program it needs is not installed. Nodes may run the
// BIRD announcer, so BIRD is always needed.
func Missing(spec Spec) string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	programs := []string{"ip", "sysctl", "bird", "birdc"}
	for _, r := range spec.Routers {
		if r.Kind == FRR {
			programs = append(programs, vtyshPath)
			for _, d := range frrDaemons {
				programs = append(programs, filepath.Join(frrLibDir, d))
			}
			break
		}
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			return "needs " + p + ": " + err.Error()
		}
	}
	return ""
}
