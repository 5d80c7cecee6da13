package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// TestMD5Mismatch: a wrong password never establishes, and status says why.
func TestMD5Mismatch(t *testing.T) {
	w := birdWorld(t, 1, "right-password")
	n1 := w.Node("n1")
	startVipd(t, n1, oneServiceConfig(peer{"r1", addr("10.255.255.1"), 65535, "wrong-password"}))
	st := waitStatus(t, n1, "a peer error that names MD5", func(st api.Status) bool {
		return len(st.Peers) == 1 && strings.Contains(st.Peers[0].LastError, "MD5")
	})
	if st.Peers[0].State == testnet.Established {
		t.Fatalf("session established with a wrong password: %+v", st.Peers[0])
	}
	sessions, err := w.Router("r1").Sessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].State == testnet.Established {
		t.Errorf("router sessions %+v, want one that is not established", sessions)
	}
	for _, v := range st.VIPs {
		if len(v.Peers) != 0 || !strings.Contains(v.Reason, "no established peer") {
			t.Errorf("VIP %s: peers %v reason %q, want none and 'no established peer'", v.Prefix, v.Peers, v.Reason)
		}
	}
}

// TestShutdown: SIGTERM withdraws at the router, closes with a Cease and
// removes the VIPs from lo, then exits 0.
func TestShutdown(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	p := startVipd(t, n1, oneServiceConfig(peer{"r1", addr("10.255.255.1"), 65535, ""}))
	waitFIB(t, r, vip4, n1.Addr4())
	waitFIB(t, r, vip6, n1.Addr6())
	if got := loAddrs(t, n1); len(got) != 2 {
		t.Fatalf("lo holds VIPs %v, want both", got)
	}
	// A second daemon on the same state_dir is refused at once.
	second, err := n1.StartVipd(t.Context(), vipdBin, oneServiceConfig(peer{"r1", addr("10.255.255.1"), 65535, ""})+n1.RuntimeYAML())
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(stopTimeout); err == nil || second.ExitCode() != 1 || !strings.Contains(second.Log(), "in use by another vipd") {
		t.Errorf("second vipd on one state_dir: %v, exit %d, want exit 1 naming the first\n%s", err, second.ExitCode(), second.Log())
	}
	out, err := exec.Command(vipdBin, "status", "--socket", n1.Socket()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Established") || !strings.Contains(string(out), vip4.String()) {
		t.Errorf("vipd status: %v\n%s", err, out)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(stopTimeout); err != nil {
		t.Fatalf("vipd after SIGTERM: %v (want exit 0)", err)
	}
	for _, prefix := range []netip.Prefix{vip4, vip6} {
		if hops, err := r.FIB(t.Context(), prefix); err != nil || len(hops) != 0 {
			t.Errorf("router FIB %s right after vipd exited: %v %v, want no route", prefix, hops, err)
		}
	}
	if got := loAddrs(t, n1); len(got) != 0 {
		t.Errorf("lo still holds VIPs %v after shutdown", got)
	}
	if log := r.Log(); !strings.Contains(log, "Received: Administrative shutdown") {
		t.Errorf("router log lacks our Cease (administrative shutdown):\n%s", log)
	}
	// The routes are withdrawn while the session is still up, before it closes.
	log := p.Log()
	iw, ic := strings.Index(log, "event=withdraw_all"), strings.Index(log, "to=Idle")
	if iw < 0 || ic < 0 || iw > ic {
		t.Errorf("vipd log: want event=withdraw_all before the session goes Idle\n%s", log)
	}
}

// TestCrashRecovery: after a SIGKILL the next start removes the VIPs the
// dead daemon added and no longer wants, and never an operator's address.
func TestCrashRecovery(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	r1 := peer{"r1", addr("10.255.255.1"), 65535, ""}
	p := startVipd(t, n1, oneServiceConfig(r1))
	waitFIB(t, r, vip4, n1.Addr4())
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(stopTimeout)
	if got := loAddrs(t, n1); len(got) != 2 {
		t.Fatalf("after SIGKILL lo holds %v, want both VIPs left behind", got)
	}
	// The operator holds 192.168.0.17 and hands it to vipd to announce.
	operator := mustPrefix("192.168.0.17/32")
	if _, err := n1.Exec(t.Context(), "ip", "addr", "add", operator.String(), "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	p2 := startVipd(t, n1, fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  peers:
%s
services:
  - name: other
    vips: [192.168.0.17]
`, peersYAML(r1)))
	waitFIB(t, r, operator, n1.Addr4())
	waitFIB(t, r, vip4)
	if got := loAddrs(t, n1); len(got) != 0 {
		t.Errorf("restarted vipd left the dead one's VIPs %v on lo", got)
	}
	if err := p2.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
	out, err := n1.Exec(t.Context(), "ip", "-o", "addr", "show", "dev", "lo")
	if err != nil || !strings.Contains(out, operator.String()) {
		t.Errorf("the operator's %s is gone from lo after vipd stopped: %v\n%s", operator, err, out)
	}
}

// TestGuard: check-config names the field of a VIP outside allowed_prefixes
// and exits 1; run refuses the same file without touching the network.
func TestGuard(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "vipd.yaml")
	body := `bgp:
  asn: 64532
  allowed_prefixes: [192.168.0.16/31]
  peers:
    - {address: 10.0.0.1, asn: 64700}
services:
  - name: web
    vips: [192.168.0.16, 10.9.9.9]
state_dir: ` + dir + "/state\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check-config", "-c", conf}, {"run", "-c", conf}} {
		out, err := exec.Command(vipdBin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("vipd %s: err %v, want exit 1\n%s", args[0], err, out)
		}
		want := "services[0].vips[1]: 10.9.9.9 is outside bgp.allowed_prefixes (line 8)"
		if !strings.Contains(string(out), want) {
			t.Errorf("vipd %s output lacks %q:\n%s", args[0], want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Errorf("vipd run created its state_dir for an invalid config")
	}
}

func oneServiceConfig(peers ...peer) string {
	return fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31, "fda4:5ff2:8477:1755::/127"]
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16, "fda4:5ff2:8477:1755::"]
`, peersYAML(peers...))
}

// loAddrs lists the VIPs (vip4, vip6) present on a node's lo.
func loAddrs(t *testing.T, n *testnet.Node) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := n.Exec(ctx, "ip", "-j", "addr", "show", "dev", "lo")
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j addr: %v", err)
	}
	var found []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Local == vip4.Addr().String() || a.Local == vip6.Addr().String() {
				found = append(found, a.Local)
			}
		}
	}
	return found
}
