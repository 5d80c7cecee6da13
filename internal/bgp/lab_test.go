package bgp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A small network-namespace lab for interop tests: a router namespace with
// BIRD and a node namespace for the speaker, joined by a veth pair. The
// speaker cannot run in a namespace inside this process (GoBGP opens sockets
// from goroutines on any thread), so the test re-runs itself inside the node
// namespace with `ip netns exec`; envLab tells the child where it is.

const envLab = "VIPD_BGP_TEST_LAB"

// lab describes the namespaces; it is passed to the child as JSON.
type lab struct {
	NodeNS, RouterNS     string
	NodeLink, RouterLink string
	// Two address pairs: the main session and a second one whose MD5
	// password is wrong on purpose.
	NodeAddr, RouterAddr       netip.Addr
	NodeAddrMD5, RouterAddrMD5 netip.Addr
	Node6, Router6             netip.Addr
	BirdSocket                 string
	FRRInstance                string // FRR's -N name
	Password                   string
}

// newLabDescription names everything "vb<pid><tag>…", so that concurrent
// test processes and tests (tag) never share a name.
func newLabDescription(dir, tag string) lab {
	prefix := fmt.Sprintf("vb%d%s", os.Getpid()%1000000, tag)
	return lab{
		NodeNS: prefix + "n", RouterNS: prefix + "r",
		NodeLink: prefix + "a", RouterLink: prefix + "b",
		NodeAddr: netip.MustParseAddr("10.99.0.2"), RouterAddr: netip.MustParseAddr("10.99.0.1"),
		NodeAddrMD5: netip.MustParseAddr("10.99.0.4"), RouterAddrMD5: netip.MustParseAddr("10.99.0.3"),
		Node6: netip.MustParseAddr("fd99::2"), Router6: netip.MustParseAddr("fd99::1"),
		BirdSocket: filepath.Join(dir, "bird.ctl"),
		Password:   "lab-md5-secret",
	}
}

// labFromEnv returns the lab when running as the child inside the node
// namespace.
func labFromEnv(t *testing.T) (lab, bool) {
	t.Helper()
	v := os.Getenv(envLab)
	if v == "" {
		return lab{}, false
	}
	var l lab
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		t.Fatalf("%s: %v", envLab, err)
	}
	return l, true
}

func requireLabTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			// As root (or under CI) everything should be installed: a
			// missing router fails rather than passing untested.
			if os.Getenv("CI") != "" || !testing.Short() {
				t.Fatalf("%s not installed", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// run runs a command and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildNetwork creates the namespaces and the veth pair, and deletes them
// when the test ends.
func buildNetwork(t *testing.T, l lab) {
	t.Helper()
	for _, ns := range []string{l.NodeNS, l.RouterNS} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "link", "add", l.NodeLink, "netns", l.NodeNS, "type", "veth", "peer", "name", l.RouterLink, "netns", l.RouterNS)
	for _, side := range []struct {
		ns, link string
		addrs    []netip.Addr
		addr6    netip.Addr
	}{
		{l.NodeNS, l.NodeLink, []netip.Addr{l.NodeAddr, l.NodeAddrMD5}, l.Node6},
		{l.RouterNS, l.RouterLink, []netip.Addr{l.RouterAddr, l.RouterAddrMD5}, l.Router6},
	} {
		for _, a := range side.addrs {
			run(t, "ip", "-n", side.ns, "addr", "add", a.String()+"/29", "dev", side.link)
		}
		run(t, "ip", "-n", side.ns, "-6", "addr", "add", side.addr6.String()+"/64", "dev", side.link, "nodad")
		run(t, "ip", "-n", side.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", side.ns, "link", "set", side.link, "up")
	}
}

// inNodeNamespace re-runs the current test inside the node namespace and
// fails if the child fails. Its output is logged.
func inNodeNamespace(t *testing.T, l lab) {
	t.Helper()
	desc, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NodeNS, os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), envLab+"="+string(desc))
	out, err := cmd.CombinedOutput()
	t.Logf("child in %s:\n%s", l.NodeNS, out)
	if err != nil {
		t.Fatalf("child test in namespace %s: %v", l.NodeNS, err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatal("child test did not pass (skipped?)")
	}
}

// startBIRD runs BIRD in the foreground in the router namespace until the
// test ends, and waits for its control socket.
func startBIRD(t *testing.T, l lab, conf string) {
	t.Helper()
	dir := filepath.Dir(l.BirdSocket)
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.RouterNS, "bird", "-f", "-c", confPath, "-s", l.BirdSocket)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // the pid we started (ip execs bird in place)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("bird (pid %d) did not exit", cmd.Process.Pid)
		}
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(dir, "bird.log"))
			t.Logf("bird output:\n%s\nbird log:\n%s", out.String(), logs)
		}
	})
	waitFor(t, 20*time.Second, "bird control socket", func() (bool, string) {
		select {
		case err := <-exited:
			t.Fatalf("bird exited: %v\n%s", err, out.String())
		default:
		}
		res, err := exec.Command("birdc", "-s", l.BirdSocket, "show", "status").CombinedOutput()
		return err == nil && strings.Contains(string(res), "Daemon is up"), string(res)
	})
}

// birdc runs a BIRD CLI command.
func birdc(t *testing.T, l lab, args ...string) string {
	t.Helper()
	return run(t, "birdc", append([]string{"-s", l.BirdSocket}, args...)...)
}

// birdRoutes parses `show route all` output into prefix -> attribute ->
// value, keeping the BGP.* attributes and the "via" line.
func birdRoutes(out string) map[netip.Prefix]map[string]string {
	routes := map[netip.Prefix]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if p, err := netip.ParsePrefix(fields[0]); err == nil && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			cur = map[string]string{}
			routes[p] = cur
			continue
		}
		if cur == nil {
			continue
		}
		trimmed := strings.TrimSpace(line)
		if k, v, ok := strings.Cut(trimmed, ": "); ok && strings.HasPrefix(k, "BGP.") {
			cur[k] = v
		} else if strings.HasPrefix(trimmed, "via ") {
			cur["via"] = fields[1]
		}
	}
	return routes
}

// birdProtocol returns the state column of `show protocols NAME`
// (e.g. "Established", "Active", "Connect").
func birdProtocol(t *testing.T, l lab, name string) string {
	t.Helper()
	for _, line := range strings.Split(birdc(t, l, "show", "protocols", name), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == name {
			return strings.Join(f[5:], " ")
		}
	}
	return ""
}
