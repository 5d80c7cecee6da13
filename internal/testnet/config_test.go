package testnet

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFRRConfig(t *testing.T) {
	spec := RouterSpec{
		Name: "r2", Kind: FRR, ASN: 64700, Address: addr("10.255.255.2"), PeerAddress: addr("169.254.169.254"),
		Neighbors: []Neighbor{
			{Address: n1v4, ASN: 64532, Password: "s3cret", Multihop: true},
			{Address: n2v4, ASN: 64533, Multihop: true},
		},
	}
	got, err := render(frrBGPTemplate, frrBGPData{RouterSpec: spec, Families: []string{"ipv4", "ipv6"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `hostname r2
router bgp 64700
 bgp router-id 10.255.255.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor 10.255.255.11 remote-as 64532
 neighbor 10.255.255.11 timers connect 1
 neighbor 10.255.255.11 advertisement-interval 0
 neighbor 10.255.255.11 password s3cret
 neighbor 10.255.255.11 ebgp-multihop 255
 neighbor 10.255.255.11 update-source 169.254.169.254
 neighbor 10.255.255.12 remote-as 64533
 neighbor 10.255.255.12 timers connect 1
 neighbor 10.255.255.12 advertisement-interval 0
 neighbor 10.255.255.12 ebgp-multihop 255
 neighbor 10.255.255.12 update-source 169.254.169.254
 address-family ipv4 unicast
  maximum-paths 8
  maximum-paths ibgp 8
  neighbor 10.255.255.11 activate
  neighbor 10.255.255.12 activate
 exit-address-family
 address-family ipv6 unicast
  maximum-paths 8
  maximum-paths ibgp 8
  neighbor 10.255.255.11 activate
  neighbor 10.255.255.11 route-map prefer-global in
  neighbor 10.255.255.12 activate
  neighbor 10.255.255.12 route-map prefer-global in
 exit-address-family
!
route-map prefer-global permit 10
 set ipv6 next-hop prefer-global
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	checkFRRConfig(t, "bgpd", got)
}

// checkFRRConfig has an FRR daemon (bgpd, bfdd) parse config in dry-run
// mode; it exits 0 even on errors, so its output must be free of error
// codes.
func checkFRRConfig(t *testing.T, daemon, config string) {
	t.Helper()
	program := filepath.Join(frrLibDir, daemon)
	if _, err := os.Stat(program); err != nil {
		skipUnlessCI(t, "needs "+program)
	}
	// Not t.TempDir: its parent is private, and bgpd reads as user frr.
	dir, err := os.MkdirTemp("", "testnet-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, daemon+".conf")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-C", "-f", path}
	if daemon == "bfdd" { // it opens its control socket even in dry-run mode
		args = append(args, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
	}
	out, err := exec.Command(program, args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "[EC ") {
		t.Errorf("%s -C: %v\n%s", daemon, err, out)
	}
}

// A route reflector's and a ToR's sessions: iBGP clients, every path to
// the ToR, next hop self towards the core.
func TestFRRFabricConfig(t *testing.T) {
	spec := RouterSpec{
		Name: "rr1", Kind: FRR, ASN: 64601, Address: addr("10.255.255.3"),
		Neighbors: []Neighbor{
			{Address: n1v4, ASN: 64601, RRClient: true},
			{Address: addr("10.255.255.2"), ASN: 64601, Export: true, AddPaths: true},
			{Address: addr("10.255.255.1"), ASN: 64700, Export: true, NextHopSelf: true},
		},
	}
	got, err := render(frrBGPTemplate, frrBGPData{RouterSpec: spec, Families: []string{"ipv4", "ipv6"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  neighbor 10.255.255.11 route-reflector-client\n",
		"  neighbor 10.255.255.2 addpath-tx-all-paths\n",
		"  neighbor 10.255.255.1 next-hop-self\n",
		"  maximum-paths ibgp 8\n",
	} {
		if strings.Count(got, line) != 2 { // both families
			t.Errorf("config has %q %d times, want 2:\n%s", line, strings.Count(got, line), got)
		}
	}
	checkFRRConfig(t, "bgpd", got)
}

func TestBirdConfigs(t *testing.T) {
	peer := Neighbor{Address: n1v4, ASN: nodeASN, Password: "s3cret", Multihop: true}
	direct := Neighbor{Address: n2v4, ASN: nodeASN}
	tests := []struct {
		name   string
		render func(h *Host) (*birdDaemon, error)
		want   []string // text the config must contain
	}{
		{"router with peer address", func(h *Host) (*birdDaemon, error) {
			return newBirdRouter(h, RouterSpec{Name: "r1", Kind: BIRD, ASN: 64700, Address: addr("10.255.255.1"),
				PeerAddress: addr("169.254.169.254"), Neighbors: []Neighbor{peer}})
		}, []string{
			"\tlocal 169.254.169.254 as 64700;", "\tneighbor 10.255.255.11 as 4200000000;", "\tmultihop;",
			"\tpassword \"s3cret\";", "merge paths on;",
		}},
		{"router with a direct session", func(h *Host) (*birdDaemon, error) {
			return newBirdRouter(h, RouterSpec{Name: "r1", Kind: BIRD, ASN: 65535, Address: addr("10.255.255.1"),
				Neighbors: []Neighbor{direct}})
		}, []string{"\tlocal as 65535;", "\tneighbor 10.255.255.12 as 4200000000;"}},
		{"reflector and ToR sessions", func(h *Host) (*birdDaemon, error) {
			return newBirdRouter(h, RouterSpec{Name: "rr1", Kind: BIRD, ASN: 64601, Address: addr("10.255.255.3"),
				Neighbors: []Neighbor{
					{Address: n2v4, ASN: 64601, RRClient: true},
					{Address: addr("10.255.255.2"), ASN: 64601, Export: true, AddPaths: true},
					{Address: addr("10.255.255.1"), ASN: 64700, Export: true, NextHopSelf: true},
				}})
		}, []string{
			"\tdirect;\n\trr client;", "export where source = RTS_BGP; gateway recursive; add paths on;",
			"next hop self;", "next hop self; next hop address fd00:255::b;",
		}},
		{"announcer", func(h *Host) (*birdDaemon, error) {
			return newAnnouncer(&Node{Host: *h}, AnnouncerSpec{ASN: nodeASN, Peers: []Neighbor{peer, direct},
				Prefixes: []netip.Prefix{vip4, vip6}, MED: 7, Communities: []string{"1:2"}, LargeCommunities: []string{"1:2:3"}})
		}, []string{
			"\troute 192.168.0.16/32 blackhole;", "\troute fda4:5ff2:8477:1755::/128 blackhole;", "\tbgp_med = 7;",
			"\tbgp_community.add((1,2));", "\tbgp_large_community.add((1,2,3));", "next hop address fd00:255::b;",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Host{name: "x", dir: t.TempDir(), addr4: n1v4, addr6: n1v6}
			d, err := tt.render(h)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.prepare(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(d.conf)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range tt.want {
				if !strings.Contains(string(b), line) {
					t.Errorf("config lacks %q:\n%s", line, b)
				}
			}
			if _, err := exec.LookPath("bird"); err != nil {
				skipUnlessCI(t, "needs bird")
			}
			if out, err := exec.Command("bird", "-p", "-c", d.conf).CombinedOutput(); err != nil {
				t.Errorf("bird -p: %v\n%s\n%s", err, out, b)
			}
		})
	}
}

// skipUnlessCI skips a test that needs a missing program, but fails it
// where every program should be installed, as worldtest.SkipOrFail does
// (this package's own tests cannot import worldtest).
func skipUnlessCI(t *testing.T, why string) {
	t.Helper()
	if ToolsRequired() && !testing.Short() {
		t.Fatal(why)
	}
	t.Skip(why)
}
