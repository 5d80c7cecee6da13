package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cmpOpts compares the netip types, whose fields are unexported, by value.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

func TestParseExample(t *testing.T) {
	got := mustParse(t, string(readTestdata(t, "example.yaml")))
	want := &Config{
		BGP: BGP{
			ASN:             4200000000,
			RouterID:        addr("10.0.240.156"),
			ListenPort:      -1,
			AllowedPrefixes: []netip.Prefix{prefix("192.168.0.16/31"), prefix("fda4:5ff2:8477:1755::/127"), prefix("198.51.100.0/28")},
			Communities:     []Community{64532<<16 | 100},
			Peers: []Peer{{
				Name:          "nrec_peer1",
				Address:       addr("10.255.255.1"),
				ASN:           65535,
				Port:          179,
				Password:      "s3cret",
				Multihop:      true,
				SourceAddress: addr("10.0.240.156"),
				HoldTime:      9 * time.Second,
				Families:      []Family{IPv4, IPv6},
				IPv6NextHop:   addr("2001:db8::5"),
				BFD: BFD{Enabled: true, Multihop: true, MinTx: 300 * time.Millisecond,
					MinRx: 300 * time.Millisecond, Multiplier: 3, MinTTL: 254},
			}},
		},
		Services: []Service{{
			Name:      "web",
			VIPs:      []netip.Addr{addr("192.168.0.16"), addr("fda4:5ff2:8477:1755::")},
			Interface: "lo",
			Bind:      true,
			Checks: []Check{
				{HTTP: &HTTPCheck{URL: "http://127.0.0.1:8080/healthz", StatusMin: 200, StatusMax: 299}},
				{TCP: &TCPCheck{Address: "127.0.0.1:8080"}},
				{Exec: &ExecCheck{Command: []string{"/etc/vipd/check.sh", "192.168.0.16"}}},
			},
			Interval:        time.Second,
			FastInterval:    time.Second,
			Timeout:         500 * time.Millisecond,
			Rise:            2,
			Fall:            2,
			OnDown:          OnDownWithdraw,
			MED:             100,
			DownMED:         1000,
			DownPrepend:     3,
			LocalPref:       100,
			DownLocalPref:   100,
			MaintenanceFile: "/etc/vipd/maintenance/web",
		}},
		Pools:    []Pool{{Name: "default", Prefixes: []netip.Prefix{prefix("198.51.100.0/28")}}},
		StateDir: "/var/lib/vipd",
		API:      API{Socket: "/run/vipd/vipd.sock", TokenFile: "/etc/vipd/api.token"},
		Metrics:  Metrics{Listen: "127.0.0.1:9477"},
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Parse(example.yaml) mismatch (-want +got):\n%s", diff)
	}
}

// minimal is the Config of testdata/minimal.yaml: every default, no peers,
// no services.
func minimal() *Config {
	return &Config{
		BGP:      BGP{ASN: 64532, ListenPort: -1},
		StateDir: "/var/lib/vipd",
		API:      API{Socket: "/run/vipd/vipd.sock"},
		Metrics:  Metrics{Listen: "127.0.0.1:9477"},
	}
}

func TestParseMinimal(t *testing.T) {
	got := mustParse(t, string(readTestdata(t, "minimal.yaml")))
	if diff := cmp.Diff(minimal(), got, cmpOpts); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

// defaultPeer is a peer with only address and asn set.
func defaultPeer(address string, asn uint32) Peer {
	return Peer{
		Name: address, Address: addr(address), ASN: asn, Port: 179, HoldTime: 9 * time.Second,
		Families: []Family{IPv4, IPv6},
		BFD:      BFD{MinTx: 300 * time.Millisecond, MinRx: 300 * time.Millisecond, Multiplier: 3},
	}
}

// defaultService is a service with only name and vips set.
func defaultService(name string, vips ...string) Service {
	s := Service{Name: name, Interface: "lo", Bind: true, Interval: time.Second, FastInterval: time.Second,
		Timeout: time.Second, Rise: 2, Fall: 2, OnDown: OnDownWithdraw, LocalPref: 100, DownLocalPref: 100}
	for _, v := range vips {
		s.VIPs = append(s.VIPs, addr(v))
	}
	return s
}

// head starts every case below: bgp with asn 64532 and allowed prefixes.
const head = "bgp:\n  asn: 64532\n  allowed_prefixes: [192.0.2.0/24, \"2001:db8::/64\"]\n"

// validCases are configs that parse; want edits the parse of head alone
// into the expected result. FuzzParse uses them as seeds too.
var validCases = []struct {
	name string
	yaml string
	want func(c *Config)
}{
	{"peer defaults", head + "  peers: [{address: 10.0.0.1, asn: 65000}]\n", func(c *Config) {
		c.BGP.Peers = []Peer{defaultPeer("10.0.0.1", 65000)}
	}},
	{"largest 4-byte ASNs", "bgp:\n  asn: 4294967295\n  allowed_prefixes: [192.0.2.0/24, \"2001:db8::/64\"]\n" +
		"  peers: [{address: 10.0.0.1, asn: 4294967295}]\n", func(c *Config) {
		c.BGP.ASN = 4294967295
		c.BGP.Peers = []Peer{defaultPeer("10.0.0.1", 4294967295)}
	}},
	{"peer ttl makes bfd multihop", head + "  peers: [{address: 10.0.0.1, asn: 1, ttl: 2}]\n", func(c *Config) {
		p := defaultPeer("10.0.0.1", 1)
		p.TTL = 2
		p.BFD.Multihop, p.BFD.MinTTL = true, 1
		c.BGP.Peers = []Peer{p}
	}},
	{"families in canonical order", head + "  peers: [{address: 10.0.0.1, asn: 1, families: [ipv6, ipv4]}]\n", func(c *Config) {
		c.BGP.Peers = []Peer{defaultPeer("10.0.0.1", 1)}
	}},
	{"hold time 0 and listen port", head + "  listen_port: 179\n  peers: [{address: 10.0.0.1, asn: 1, hold_time: 0s}]\n", func(c *Config) {
		c.BGP.ListenPort = 179
		p := defaultPeer("10.0.0.1", 1)
		p.HoldTime = 0
		c.BGP.Peers = []Peer{p}
	}},
	{"communities", head + "  communities: [\"65535:65281\", \"0:0\"]\n  large_communities: [\"4294967295:0:1\"]\n", func(c *Config) {
		c.BGP.Communities = []Community{0xffffff01, 0}
		c.BGP.LargeCommunities = []LargeCommunity{{Global: 4294967295, Local1: 0, Local2: 1}}
	}},
	{"service defaults", head + "services: [{name: web, vips: [192.0.2.1]}]\n", func(c *Config) {
		c.Services = []Service{defaultService("web", "192.0.2.1")}
	}},
	{"timeout defaults to a short interval", head + "services: [{name: a, vips: [192.0.2.1], interval: 200ms}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Interval, s.FastInterval, s.Timeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
		c.Services = []Service{s}
	}},
	{"ExaBGP's Safespring setting: fast interval 1s under interval 15s", head + "services: [{name: a, vips: [192.0.2.1], interval: 15s, rise: 3, fall: 3}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Interval, s.Rise, s.Fall = 15*time.Second, 3, 3
		c.Services = []Service{s}
	}},
	{"a short fast interval bounds the default timeout", head + "services: [{name: a, vips: [192.0.2.1], interval: 15s, fast_interval: 200ms}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Interval, s.FastInterval, s.Timeout = 15*time.Second, 200*time.Millisecond, 200*time.Millisecond
		c.Services = []Service{s}
	}},
	{"an explicit timeout may exceed the fast interval", head + "services: [{name: a, vips: [192.0.2.1], interval: 15s, timeout: 5s}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Interval, s.Timeout = 15*time.Second, 5*time.Second
		c.Services = []Service{s}
	}},
	{"listen and process checks", head + "services:\n  - name: a\n    vips: [192.0.2.1]\n    checks:\n" +
		"      - listen: {port: 443}\n      - listen: {port: 80, address: \"::1\"}\n" +
		"      - process: {pid_file: /run/nginx.pid}\n      - process: {name: nginx}\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Checks = []Check{
			{Listen: &ListenCheck{Port: 443}},
			{Listen: &ListenCheck{Port: 80, Address: addr("::1")}},
			{Process: &ProcessCheck{PIDFile: "/run/nginx.pid"}},
			{Process: &ProcessCheck{Name: "nginx"}},
		}
		c.Services = []Service{s}
	}},
	{"timeout defaults to 1s under a long interval", head + "services: [{name: a, vips: [192.0.2.1], interval: 5s}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Interval = 5 * time.Second
		c.Services = []Service{s}
	}},
	{"host prefixes as VIPs", head + "services: [{name: a, vips: [192.0.2.1/32, \"2001:db8::1/128\"]}]\n", func(c *Config) {
		c.Services = []Service{defaultService("a", "192.0.2.1", "2001:db8::1")}
	}},
	{"one expected status", head + "services:\n  - name: a\n    vips: [192.0.2.1]\n" +
		"    checks: [{http: {url: \"https://[::1]:8443/\", expect_status: 204}}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.Checks = []Check{{HTTP: &HTTPCheck{URL: "https://[::1]:8443/", StatusMin: 204, StatusMax: 204}}}
		c.Services = []Service{s}
	}},
	{"degrade", head + "services: [{name: a, vips: [192.0.2.1], on_down: degrade, down_med: 4294967295, down_prepend: 32}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.OnDown, s.DownMED, s.DownPrepend = OnDownDegrade, 4294967295, 32
		c.Services = []Service{s}
	}},
	{"local_pref, down_local_pref defaults to it", head + "services: [{name: a, vips: [192.0.2.1], on_down: degrade, local_pref: 200}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.OnDown, s.LocalPref, s.DownLocalPref = OnDownDegrade, 200, 200
		c.Services = []Service{s}
	}},
	{"down_local_pref", head + "services: [{name: a, vips: [192.0.2.1], on_down: degrade, down_local_pref: 0}]\n", func(c *Config) {
		s := defaultService("a", "192.0.2.1")
		s.OnDown, s.DownLocalPref = OnDownDegrade, 0
		c.Services = []Service{s}
	}},
	{"prepend beside an iBGP peer when one peer is eBGP", head + "  peers: [{address: 10.0.0.1, asn: 64532}, {address: 10.0.0.2, asn: 65000}]\n" +
		"services: [{name: a, vips: [192.0.2.1], prepend: 2}]\n", func(c *Config) {
		c.BGP.Peers = []Peer{defaultPeer("10.0.0.1", 64532), defaultPeer("10.0.0.2", 65000)}
		s := defaultService("a", "192.0.2.1")
		s.Prepend = 2
		c.Services = []Service{s}
	}},
	{"empty metrics listen disables", head + "metrics: {listen: \"\"}\n", func(c *Config) {
		c.Metrics.Listen = ""
	}},
	{"null metrics listen keeps the default", head + "metrics: {listen: }\n", func(c *Config) {}},
	{"empty lists", head + "services: []\npools: []\n", func(c *Config) {}},
	{"service ports", head + "services: [{name: a, vips: [192.0.2.1], ports: [443, 80]}]\n", func(c *Config) {
		a := defaultService("a", "192.0.2.1")
		a.Ports = []uint16{443, 80}
		c.Services = []Service{a}
	}},
	{"api tls", head + "api: {listen: \"[::1]:10001\", token_file: /t, tls_cert: /c, tls_key: /k}\n", func(c *Config) {
		c.API.Listen, c.API.TokenFile, c.API.TLSCert, c.API.TLSKey = "[::1]:10001", "/t", "/c", "/k"
	}},
	{"graceful restart", head + "  graceful_restart: true\n", func(c *Config) { c.BGP.GracefulRestart = true }},
	{"api listen with token", head + "api: {listen: \"[::1]:10001\", token_file: /etc/vipd/t}\n", func(c *Config) {
		c.API.Listen, c.API.TokenFile = "[::1]:10001", "/etc/vipd/t"
	}},
	{"merge keys", head + "services:\n  - &web {name: web, vips: [192.0.2.1], rise: 5}\n  - {<<: *web, name: api, vips: [192.0.2.2]}\n", func(c *Config) {
		web, api := defaultService("web", "192.0.2.1"), defaultService("api", "192.0.2.2")
		web.Rise, api.Rise = 5, 5
		c.Services = []Service{web, api}
	}},
	{"pools beside VIPs", head + "services: [{name: a, vips: [192.0.2.1]}]\npools: [{name: p, prefixes: [192.0.2.16/28]}]\n", func(c *Config) {
		c.Services = []Service{defaultService("a", "192.0.2.1")}
		c.Pools = []Pool{{Name: "p", Prefixes: []netip.Prefix{prefix("192.0.2.16/28")}}}
	}},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			want := minimal()
			want.BGP.AllowedPrefixes = []netip.Prefix{prefix("192.0.2.0/24"), prefix("2001:db8::/64")}
			tc.want(want)
			got := mustParse(t, tc.yaml)
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestService(t *testing.T) {
	cfg := mustParse(t, head+"services: [{name: a, vips: [192.0.2.1]}, {name: b, vips: [192.0.2.2]}]\n")
	if s := cfg.Service("b"); s == nil || s.VIPs[0] != addr("192.0.2.2") {
		t.Errorf(`Service("b") = %+v, want the second service`, s)
	}
	if s := cfg.Service("c"); s != nil {
		t.Errorf(`Service("c") = %+v, want nil`, s)
	}
}

func TestCommunityString(t *testing.T) {
	for _, text := range []string{"0:0", "64532:100", "65535:65281"} {
		c, err := parseCommunity(text)
		if err != nil || c.String() != text {
			t.Errorf("parseCommunity(%q) = %v, %v; want it back", text, c, err)
		}
	}
	for _, text := range []string{"0:0:0", "4200000000:1:2", "4294967295:4294967295:4294967295"} {
		c, err := parseLargeCommunity(text)
		if err != nil || c.String() != text {
			t.Errorf("parseLargeCommunity(%q) = %v, %v; want it back", text, c, err)
		}
	}
	if got := Community(0xffff0000).String(); got != "65535:0" {
		t.Errorf("GRACEFUL_SHUTDOWN prints as %q", got)
	}
	if got := (LargeCommunity{1, 2, 3}).String(); got != "1:2:3" {
		t.Errorf("LargeCommunity{1, 2, 3} prints as %q", got)
	}
}

func TestParseKubernetes(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       *Kubernetes
	}{
		{"absent", head, nil},
		{"empty section: every default", head + "kubernetes: {}\n",
			&Kubernetes{ExternalIPs: true, LoadBalancers: true, Interface: "lo", LeaseDuration: 15 * time.Second}},
		{"empty strings mean the defaults", head + "kubernetes: {kubeconfig: \"\", node_name: \"\", namespace: \"\", load_balancer_class: \"\"}\n",
			&Kubernetes{ExternalIPs: true, LoadBalancers: true, Interface: "lo", LeaseDuration: 15 * time.Second}},
		{"every key", head + "kubernetes:\n  kubeconfig: /etc/vipd/kubeconfig\n  node_name: node-1.example\n" +
			"  namespace: infra\n  external_ips: false\n  load_balancers: false\n" +
			"  load_balancer_class: example.com/bgp\n  interface: eth1\n  lease_duration: 30s\n",
			&Kubernetes{Kubeconfig: "/etc/vipd/kubeconfig", NodeName: "node-1.example", Namespace: "infra",
				LoadBalancerClass: "example.com/bgp", Interface: "eth1", LeaseDuration: 30 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.yaml).Kubernetes
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCluster(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       *Cluster
	}{
		{"absent", head, nil},
		{"endpoints only: every default", head + "cluster: {etcd: {endpoints: [\"http://10.0.0.5:2379\"]}}\n",
			&Cluster{MemberTTL: 10 * time.Second, Etcd: Etcd{Endpoints: []string{"http://10.0.0.5:2379"}, Prefix: "/vipd"}}},
		{"every key", head + "cluster:\n  node_name: node-1\n  labels: {rack: a, example.com/zone: z1}\n  member_ttl: 30s\n" +
			"  etcd:\n    endpoints: [\"https://e1:2379\", \"https://[fd00::5]:2379\"]\n    prefix: /prod/vipd\n" +
			"    ca_file: /etc/vipd/ca.pem\n    cert_file: /etc/vipd/c.pem\n    key_file: /etc/vipd/c.key\n" +
			"    username: vipd\n    password_file: /etc/vipd/etcd.pw\n",
			&Cluster{NodeName: "node-1", Labels: map[string]string{"rack": "a", "example.com/zone": "z1"}, MemberTTL: 30 * time.Second,
				Etcd: Etcd{Endpoints: []string{"https://e1:2379", "https://[fd00::5]:2379"}, Prefix: "/prod/vipd",
					CAFile: "/etc/vipd/ca.pem", CertFile: "/etc/vipd/c.pem", KeyFile: "/etc/vipd/c.key",
					Username: "vipd", PasswordFile: "/etc/vipd/etcd.pw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.yaml).Cluster
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
