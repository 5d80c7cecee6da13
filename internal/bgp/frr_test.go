package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/testnet"
)

const frrConf = `frr defaults traditional
hostname router
log file {{dir}}/frr.log debugging
!
router bgp 65535
 bgp router-id {{router}}
 no bgp ebgp-requires-policy
 neighbor {{node}} remote-as 4200000000
 neighbor {{node}} ebgp-multihop 255
 neighbor {{node}} update-source {{router}}
 neighbor {{node}} password {{password}}
 neighbor {{node}} passive
 neighbor {{node}} timers 3 9
 !
 address-family ipv4 unicast
  neighbor {{node}} activate
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor {{node}} activate
 exit-address-family
!
`

// TestFRR runs the speaker against FRR's bgpd: IPv4 and IPv6 routes over one
// IPv4 multihop MD5 session, with attributes, in FRR's RIB and the router's
// kernel FIB; an in-place MED change; withdrawal.
func TestFRR(t *testing.T) {
	if l, child := labFromEnv(t); child {
		frrChecks(t, l)
		return
	}
	requireLabTools(t, "vtysh", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd")
	dir, err := os.MkdirTemp("", "vipd-bgp-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := newLabDescription(dir, "f")
	l.FRRInstance = l.RouterNS
	buildNetwork(t, l)
	conf := strings.NewReplacer("{{dir}}", frrRunDir(l), "{{password}}", l.Password,
		"{{router}}", l.RouterAddr.String(), "{{node}}", l.NodeAddr.String()).Replace(frrConf)
	startFRR(t, l, dir, conf)
	inNodeNamespace(t, l)
}

func frrRunDir(l lab) string { return filepath.Join("/var/run/frr", l.FRRInstance) }

// startFRR starts zebra and bgpd in the router namespace as FRR instance
// l.FRRInstance, and kills them (by their recorded PIDs) when the test ends.
func startFRR(t *testing.T, l lab, dir, conf string) {
	t.Helper()
	runDir := frrRunDir(l)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	run(t, "chown", "frr:frr", runDir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, daemon := range []string{"zebra", "bgpd"} {
		pidFile := filepath.Join(runDir, daemon+".pid")
		run(t, "ip", "netns", "exec", l.RouterNS, "/usr/lib/frr/"+daemon, "-d", "-N", l.FRRInstance, "-f", confPath, "-i", pidFile)
		t.Cleanup(func() { stopPIDFile(t, pidFile) })
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(runDir, "frr.log"))
			t.Logf("frr log:\n%s", logs)
		}
	})
	waitFor(t, 30*time.Second, "bgpd to answer", func() (bool, string) {
		out, err := vtysh(l, "show bgp summary json")
		return err == nil && strings.Contains(out, "65535"), fmt.Sprint(out, err)
	})
}

// stopPIDFile terminates the process whose PID a daemon wrote, and waits.
func stopPIDFile(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Errorf("read %s: %v", pidFile, err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Errorf("bad pid in %s: %q", pidFile, b)
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	err = testnet.WaitFor(context.Background(), 10*time.Second, func(context.Context) error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d still running", pid)
		}
		return nil
	})
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// frrChecks runs inside the node namespace. As with BIRD, both sides
// listen and dial, so either connection may carry the session.
func frrChecks(t *testing.T, l lab) {
	s := startSpeaker(t, Global{
		ASN: 4200000000, RouterID: l.NodeAddr, ListenPort: 179,
		AllowedPrefixes: []netip.Prefix{allowedV4, allowedV6},
	}, nil)
	peer := config.Peer{Name: "frr", Address: l.RouterAddr, ASN: 65535, Password: config.Secret(l.Password),
		Multihop: true, SourceAddress: l.NodeAddr, HoldTime: 9 * time.Second}
	if err := s.SetPeers(context.Background(), []config.Peer{peer}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	up := waitEstablished(t, s.Speaker, l.RouterAddr)

	routes := []Route{
		{Prefix: vip4, MED: 100, Communities: []config.Community{64532<<16 | 100}, LargeCommunities: []config.LargeCommunity{{Global: 4200000000, Local1: 1, Local2: 2}}},
		{Prefix: vip6, MED: 100, Prepend: 1},
	}
	if err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes: %v", err)
	}
	want := map[netip.Prefix]string{
		vip4: fmt.Sprintf("nh=%s med=100 aspath=4200000000 comms=64532:100 large=4200000000:1:2", l.NodeAddr),
		vip6: fmt.Sprintf("nh=%s med=100 aspath=4200000000 4200000000 comms= large=", l.Node6),
	}
	waitFRRRoutes(t, l, want)
	for _, r := range []struct{ family, prefix, via string }{{"-4", "192.0.2.16", l.NodeAddr.String()}, {"-6", "2001:db8:1::", l.Node6.String()}} {
		waitFor(t, 10*time.Second, "kernel route for "+r.prefix, func() (bool, string) {
			out := run(t, "ip", "-n", l.RouterNS, r.family, "route", "show", r.prefix)
			return strings.Contains(out, "via "+r.via), out
		})
	}

	routes[0].MED = 200
	if err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes with new MED: %v", err)
	}
	want[vip4] = strings.Replace(want[vip4], "med=100", "med=200", 1)
	waitFRRRoutes(t, l, want)
	if st, _ := peerStatus(s.Speaker, l.RouterAddr); !st.Since.Equal(up.Since) {
		t.Errorf("session reset by a MED change: %+v", st)
	}

	if err := s.SetRoutes(context.Background(), nil); err != nil {
		t.Fatalf("SetRoutes(nil): %v", err)
	}
	waitFRRRoutes(t, l, map[netip.Prefix]string{})
}

// frrPath is the part of `show bgp ... json` the test reads.
type frrPath struct {
	Med       *uint32                  `json:"metric"`
	ASPath    struct{ String string }  `json:"aspath"`
	Community *struct{ String string } `json:"community"`
	Large     *struct{ String string } `json:"largeCommunity"`
	Nexthops  []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
}

// waitFRRRoutes waits until FRR's BGP table holds exactly want
// (prefix -> pathSummary-style text).
func waitFRRRoutes(t *testing.T, l lab, want map[netip.Prefix]string) {
	t.Helper()
	waitFor(t, 30*time.Second, "routes in FRR", func() (bool, string) {
		got, err := frrRoutes(l)
		if err != nil {
			return false, err.Error()
		}
		diff := cmp.Diff(want, got)
		return diff == "", diff
	})
}

// frrRoutes lists FRR's BGP routes: the table gives the prefixes, a
// per-prefix query the attributes.
func frrRoutes(l lab) (map[netip.Prefix]string, error) {
	got := map[netip.Prefix]string{}
	for _, family := range []string{"ipv4", "ipv6"} {
		out, err := vtysh(l, "show bgp "+family+" unicast json")
		if err != nil {
			return nil, err
		}
		var table struct {
			Routes map[string]json.RawMessage `json:"routes"`
		}
		if err := json.Unmarshal([]byte(out), &table); err != nil {
			return nil, fmt.Errorf("parse %s table: %w\n%s", family, err, out)
		}
		for prefix := range table.Routes {
			out, err := vtysh(l, "show bgp "+family+" unicast "+prefix+" json")
			if err != nil {
				return nil, err
			}
			var detail struct {
				Paths []frrPath `json:"paths"`
			}
			if err := json.Unmarshal([]byte(out), &detail); err != nil || len(detail.Paths) == 0 {
				return nil, fmt.Errorf("parse %s: %v\n%s", prefix, err, out)
			}
			got[netip.MustParsePrefix(prefix)] = frrSummary(detail.Paths[0])
		}
	}
	return got, nil
}

// vtysh runs one FRR CLI command and returns its standard output (vtysh
// complains on stderr about the instance's missing vtysh.conf).
func vtysh(l lab, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "-N", l.FRRInstance, "-c", command).Output()
	if err != nil {
		return "", fmt.Errorf("vtysh %q: %w", command, err)
	}
	return string(out), nil
}

func frrSummary(p frrPath) string {
	med, nh, comms, large := "-", "", "", ""
	if p.Med != nil {
		med = fmt.Sprint(*p.Med)
	}
	for _, n := range p.Nexthops {
		if n.Scope != "link-local" {
			nh = n.IP
			break
		}
	}
	if p.Community != nil {
		comms = p.Community.String
	}
	if p.Large != nil {
		large = p.Large.String
	}
	return fmt.Sprintf("nh=%s med=%s aspath=%s comms=%s large=%s", nh, med, p.ASPath.String, comms, large)
}
