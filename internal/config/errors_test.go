package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseErrors parses yaml that must fail and returns its errors.
func parseErrors(t *testing.T, yaml string) []*FieldError {
	t.Helper()
	cfg, err := Parse([]byte(yaml))
	if err == nil {
		t.Fatalf("Parse succeeded with %+v, want an error", cfg)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error %v (%T) is no *Errors", err, err)
	}
	return errs.List
}

// peer and service start a peer list or a service list after head (which
// is lines 1-3), so that a case's first own line is line 7.
const (
	peer    = head + "  peers:\n    - address: 10.0.0.1\n      asn: 65000\n"
	service = head + "services:\n  - name: web\n    vips: [192.0.2.1]\n"
)

// errorCases are configs with exactly one error each. FuzzParse uses them
// as seeds too.
var errorCases = []struct {
	name string
	yaml string
	path string
	line int
	msg  string // a substring of the message
}{
	// document
	{"empty document", "", "bgp", 0, "required"},
	{"syntax", "bgp: [\n", "", 1, "invalid YAML"},
	{"two documents", head + "---\nbgp: {}\n", "", 4, "only one YAML document"},
	{"root is a list", "- bgp\n", "", 1, "want a mapping, got a list"},
	{"unknown top-level key", head + "servics: []\n", "servics", 4, "unknown key (want one of api, bgp, cluster, dataplane, kubernetes, metrics"},
	{"duplicate key", head + "state_dir: /a\nstate_dir: /b\n", "state_dir", 5, "duplicate key (first at line 4)"},
	{"alias cycle", head + "services: &s [*s]\n", "", 4, "refers to a node that contains it"},
	{"merge of a scalar", head + "api: {<<: 1}\n", "api", 4, "<< must merge a mapping"},

	// bgp
	{"asn missing", "bgp: {router_id: 10.0.0.1}\n", "bgp.asn", 1, "required"},
	{"asn zero", "bgp:\n  asn: 0\n", "bgp.asn", 2, "must be 1..4294967295, got 0"},
	{"asn too large", "bgp:\n  asn: 4294967296\n", "bgp.asn", 2, "must be 1..4294967295, got 4294967296"},
	{"asn as a string", "bgp:\n  asn: \"65000\"\n", "bgp.asn", 2, `want an integer, got "65000"`},
	{"asn as a float", "bgp:\n  asn: 1.5\n", "bgp.asn", 2, `want an integer, got "1.5"`},
	{"router id IPv6", head + "  router_id: \"2001:db8::1\"\n", "bgp.router_id", 4, "want an IPv4 address"},
	{"router id zero", head + "  router_id: 0.0.0.0\n", "bgp.router_id", 4, "must not be 0.0.0.0"},
	{"router id is a VIP", head + "  router_id: 192.0.2.1\nservices: [{name: web, vips: [192.0.2.1]}]\n", "bgp.router_id", 4, `is a VIP of service "web"`},
	{"listen port 0", head + "  listen_port: 0\n", "bgp.listen_port", 4, "must be -1 (only dial out) or a port"},
	{"listen port too large", head + "  listen_port: 65536\n", "bgp.listen_port", 4, "must be -1..65535"},
	{"allowed prefixes twice", head + "  allowed_prefixes: [10.0.0.0/24]\n", "bgp.allowed_prefixes", 4, "duplicate key (first at line 3)"},
	{"prefix with host bits", "bgp:\n  asn: 1\n  allowed_prefixes: [10.0.0.1/24]\n", "bgp.allowed_prefixes[0]", 3, "10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"},
	{"prefix not a prefix", "bgp:\n  asn: 1\n  allowed_prefixes: [10.0.0.1]\n", "bgp.allowed_prefixes[0]", 3, `want a prefix like 192.0.2.0/24, got "10.0.0.1"`},
	{"community half too large", head + "  communities: [\"65536:1\"]\n", "bgp.communities[0]", 4, "two numbers 0..65535"},
	{"community one number", head + "  communities: [100]\n", "bgp.communities[0]", 4, `got "100"`},
	{"large community two numbers", head + "  large_communities: [\"1:2\"]\n", "bgp.large_communities[0]", 4, "three numbers"},
	{"negative grace", head + "  shutdown_grace: -1s\n", "bgp.shutdown_grace", 4, "must not be negative"},
	{"grace without unit", head + "  shutdown_grace: 5\n", "bgp.shutdown_grace", 4, `want a duration like "300ms" or "2s", got "5"`},
	{"grace past the bound", head + "  shutdown_grace: 11m\n", "bgp.shutdown_grace", 4, "11m0s is longer than 10m0s"},

	// peers
	{"peer without address", head + "  peers: [{asn: 1}]\n", "bgp.peers[0].address", 4, "required"},
	{"peer without asn", head + "  peers: [{address: 10.0.0.1}]\n", "bgp.peers[0].asn", 4, "required"},
	{"peer unknown key", peer + "      hold: 3s\n", "bgp.peers[0].hold", 7, "unknown key (want one of address, asn, bfd"},
	{"peer address multicast", head + "  peers: [{address: 224.0.0.5, asn: 1}]\n", "bgp.peers[0].address", 4, "want a unicast address"},
	{"peer address with zone", head + "  peers: [{address: \"fe80::1%eth0\", asn: 1}]\n", "bgp.peers[0].address", 4, "zone"},
	{"peer address 4in6", head + "  peers: [{address: \"::ffff:10.0.0.1\", asn: 1}]\n", "bgp.peers[0].address", 4, "as 10.0.0.1"},
	{"peer address twice", peer + "    - {address: 10.0.0.1, asn: 1, name: b}\n", "bgp.peers[1].address", 7, "also the address of bgp.peers[0]"},
	{"peer name twice", peer + "      name: a\n    - {address: 10.0.0.2, asn: 1, name: a}\n", "bgp.peers[1].name", 8, `"a" is also the name of bgp.peers[0]`},
	{"peer port 0", peer + "      port: 0\n", "bgp.peers[0].port", 7, "must be 1..65535"},
	{"password and file", peer + "      password: x\n      password_file: /k\n", "bgp.peers[0].password_file", 8, "not both"},
	{"empty password", peer + "      password: \"\"\n", "bgp.peers[0].password", 7, "must not be empty"},
	{"long password", peer + "      password: " + strings.Repeat("k", 81) + "\n", "bgp.peers[0].password", 7, "at most 80 bytes, got 81"},
	{"relative password file", peer + "      password_file: peer.key\n", "bgp.peers[0].password_file", 7, "want an absolute path"},
	{"multihop and ttl", peer + "      multihop: true\n      ttl: 5\n", "bgp.peers[0].ttl", 8, "set multihop or ttl, not both"},
	{"multihop not a bool", peer + "      multihop: yes\n", "bgp.peers[0].multihop", 7, `want true or false, got "yes"`},
	{"ttl 0", peer + "      ttl: 0\n", "bgp.peers[0].ttl", 7, "must be 1..255"},
	{"source address family", peer + "      source_address: \"2001:db8::1\"\n", "bgp.peers[0].source_address", 7, "not in the same address family"},
	{"hold time below 3s", peer + "      hold_time: 2s\n", "bgp.peers[0].hold_time", 7, "must be 0 (no keepalives) or at least 3s"},
	{"hold time fraction", peer + "      hold_time: 3500ms\n", "bgp.peers[0].hold_time", 7, "whole seconds"},
	{"hold time too long", peer + "      hold_time: 65536s\n", "bgp.peers[0].hold_time", 7, "at most 18h12m15s"},
	{"families empty", peer + "      families: []\n", "bgp.peers[0].families", 7, "must list ipv4, ipv6 or both"},
	{"families unknown", peer + "      families: [ipv4, vpnv4]\n", "bgp.peers[0].families[1]", 7, `want ipv4 or ipv6, got "vpnv4"`},
	{"families twice", peer + "      families: [ipv6, ipv6]\n", "bgp.peers[0].families[1]", 7, "ipv6 is listed twice"},
	{"families not a list", peer + "      families: ipv4\n", "bgp.peers[0].families", 7, `want a list, got "ipv4"`},
	{"next hop IPv4", peer + "      ipv6_next_hop: 10.0.0.2\n", "bgp.peers[0].ipv6_next_hop", 7, "global unicast IPv6"},
	{"next hop link-local", peer + "      ipv6_next_hop: \"fe80::1\"\n", "bgp.peers[0].ipv6_next_hop", 7, "global unicast IPv6"},
	{"bfd not a mapping", peer + "      bfd: true\n", "bgp.peers[0].bfd", 7, `want a mapping, got "true"`},
	{"bfd fast tx", peer + "      bfd: {min_tx: 5ms}\n", "bgp.peers[0].bfd.min_tx", 7, "at least 10ms, got 5ms"},
	{"bfd slow rx", peer + "      bfd: {min_rx: 2h}\n", "bgp.peers[0].bfd.min_rx", 7, "at most 1h0m0s"},
	{"bfd multiplier 0", peer + "      bfd: {multiplier: 0}\n", "bgp.peers[0].bfd.multiplier", 7, "must be 1..255"},
	{"bfd min ttl single-hop", peer + "      bfd:\n        min_ttl: 250\n", "bgp.peers[0].bfd.min_ttl", 8, "only allowed with multihop"},
	{"bfd min ttl 256", peer + "      multihop: true\n      bfd: {min_ttl: 256}\n", "bgp.peers[0].bfd.min_ttl", 8, "must be 1..255"},

	{"bfd auth unknown type", peer + "      bfd: {auth: {type: simple, key: k}}\n", "bgp.peers[0].bfd.auth.type", 7, `want keyed_sha1, meticulous_keyed_sha1, keyed_md5 or meticulous_keyed_md5, got "simple"`},
	{"bfd auth without type", peer + "      bfd: {auth: {key: k}}\n", "bgp.peers[0].bfd.auth.type", 7, "required"},
	{"bfd auth without key", peer + "      bfd: {auth: {type: keyed_sha1}}\n", "bgp.peers[0].bfd.auth", 7, "key or key_file is required"},
	{"bfd auth key and file", peer + "      bfd: {auth: {type: keyed_sha1, key: k, key_file: /k}}\n", "bgp.peers[0].bfd.auth.key_file", 7, "not both"},
	{"bfd auth md5 key too long", peer + "      bfd: {auth: {type: keyed_md5, key: " + strings.Repeat("k", 17) + "}}\n", "bgp.peers[0].bfd.auth.key", 7, "a keyed_md5 key has at most 16 bytes, got 17"},
	{"bfd auth sha1 key too long", peer + "      bfd: {auth: {type: meticulous_keyed_sha1, key: " + strings.Repeat("k", 21) + "}}\n", "bgp.peers[0].bfd.auth.key", 7, "at most 20 bytes, got 21"},
	{"bfd auth key id", peer + "      bfd: {auth: {type: keyed_sha1, key: k, key_id: 256}}\n", "bgp.peers[0].bfd.auth.key_id", 7, "must be 0..255"},

	// services
	{"service without name", head + "services: [{vips: [192.0.2.1]}]\n", "services[0].name", 4, "required"},
	{"service name with slash", head + "services: [{name: a/b, vips: [192.0.2.1]}]\n", "services[0].name", 4, `got "a/b"`},
	{"service name twice", service + "  - {name: web, vips: [192.0.2.2]}\n", "services[1].name", 7, `"web" is also the name of services[0]`},
	{"service without vips", head + "services: [{name: a}]\n", "services[0].vips", 4, "required"},
	{"service with empty vips", head + "services: [{name: a, vips: []}]\n", "services[0].vips", 4, "at least one address"},
	{"vip outside allowed", service + "  - name: api\n    vips: [192.0.2.2, 10.9.9.9]\n", "services[1].vips[1]", 8, "10.9.9.9 is outside bgp.allowed_prefixes"},
	{"vip in two services", service + "  - {name: api, vips: [192.0.2.1]}\n", "services[1].vips[0]", 7, `192.0.2.1 is a VIP of both service "web" and service "api"`},
	{"vip twice in a service", head + "services: [{name: a, vips: [192.0.2.1, 192.0.2.1/32]}]\n", "services[0].vips[1]", 4, "192.0.2.1 is listed twice"},
	{"vip is a prefix", head + "services: [{name: a, vips: [192.0.2.0/24]}]\n", "services[0].vips[0]", 4, "is a prefix, but a VIP is one address"},
	{"vip multicast", head + "services: [{name: a, vips: [239.1.1.1]}]\n", "services[0].vips[0]", 4, "cannot be a VIP"},
	{"vip loopback", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\nservices: [{name: a, vips: [127.0.0.2]}]\n", "services[0].vips[0]", 4, "127.0.0.2 cannot be a VIP: it is loopback"},
	{"vip broadcast", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\nservices: [{name: a, vips: [255.255.255.255]}]\n", "services[0].vips[0]", 4, "it is the broadcast address"},
	{"vip reserved", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\nservices: [{name: a, vips: [240.0.0.1]}]\n", "services[0].vips[0]", 4, "reserved"},
	{"vip this network", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\nservices: [{name: a, vips: [0.1.2.3]}]\n", "services[0].vips[0]", 4, "this network"},
	{"vip IPv6 loopback", "bgp:\n  asn: 1\n  allowed_prefixes: [\"::/0\"]\nservices: [{name: a, vips: [\"::1\"]}]\n", "services[0].vips[0]", 4, "::1 cannot be a VIP: it is loopback"},
	{"vip is a peer", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\n  peers: [{address: 10.0.0.1, asn: 2}]\nservices: [{name: a, vips: [10.0.0.1]}]\n", "services[0].vips[0]", 5, "10.0.0.1 is the address of bgp.peers[0]"},
	{"vip not an address", head + "services: [{name: a, vips: [web]}]\n", "services[0].vips[0]", 4, `want an IP address, got "web"`},
	{"interface too long", service + "    interface: averyveryverylongname\n", "services[0].interface", 7, "at most 15 bytes"},
	{"bind not a bool", service + "    bind: 1\n", "services[0].bind", 7, `want true or false, got "1"`},
	{"interval too short", service + "    interval: 1ms\n", "services[0].interval", 7, "at least 10ms"},
	{"timeout 0", service + "    timeout: 0s\n", "services[0].timeout", 7, "must be more than 0"},
	{"fast interval above interval", service + "    interval: 1s\n    fast_interval: 2s\n", "services[0].fast_interval", 8, "must not be longer than interval (1s), got 2s"},
	{"fast interval too short", service + "    fast_interval: 1ms\n", "services[0].fast_interval", 7, "at least 10ms"},
	{"timeout above interval", service + "    interval: 100ms\n    timeout: 200ms\n", "services[0].timeout", 8, "must not be longer than interval (100ms), got 200ms"},
	{"rise 0", service + "    rise: 0\n", "services[0].rise", 7, "must be at least 1, got 0"},
	{"rise not a number", service + "    rise: x\n", "services[0].rise", 7, `want an integer, got "x"`},
	{"fall negative", service + "    fall: -1\n", "services[0].fall", 7, "must be at least 1"},
	{"on_down unknown", service + "    on_down: drain\n", "services[0].on_down", 7, `want withdraw or degrade, got "drain"`},
	{"med negative", service + "    med: -1\n", "services[0].med", 7, "must be 0..4294967295"},
	{"prepend too many", service + "    down_prepend: 33\n", "services[0].down_prepend", 7, "must be 0..32"},
	{"local_pref negative", service + "    local_pref: -1\n", "services[0].local_pref", 7, "must be 0..4294967295"},
	{"down_local_pref too big", service + "    down_local_pref: 4294967296\n", "services[0].down_local_pref", 7, "must be 0..4294967295"},
	{"prepend with only iBGP peers", head + "  peers: [{address: 10.0.0.1, asn: 64532}]\nservices:\n  - name: web\n    vips: [192.0.2.1]\n    prepend: 1\n",
		"services[0].prepend", 8, "has no effect: every bgp peer is iBGP (asn 64532, as bgp.asn), and AS-path prepends go to eBGP peers only"},
	{"down_prepend with only iBGP peers", head + "  peers: [{address: 10.0.0.1, asn: 64532}]\nservices:\n  - name: web\n    vips: [192.0.2.1]\n    on_down: degrade\n    down_prepend: 3\n",
		"services[0].down_prepend", 9, "on iBGP use local_pref and down_local_pref"},
	{"service community", service + "    communities: [\"a:b\"]\n", "services[0].communities[0]", 7, "want a community"},
	{"maintenance file relative", service + "    maintenance_file: web\n", "services[0].maintenance_file", 7, "want an absolute path"},
	{"port 0", service + "    ports: [80, 0]\n", "services[0].ports[1]", 7, "must be 1..65535, got 0"},
	{"port twice", service + "    ports: [80, 443, 80]\n", "services[0].ports[2]", 7, "port 80 is listed twice"},
	{"ports not a list", service + "    ports: 80\n", "services[0].ports", 7, "want a list"},
	{"tls cert without key", head + "api: {listen: \"127.0.0.1:1\", token_file: /t, tls_cert: /c}\n", "api.tls_key", 4, "required with tls_cert"},
	{"tls key without cert", head + "api: {listen: \"127.0.0.1:1\", token_file: /t, tls_key: /k}\n", "api.tls_cert", 4, "required with tls_key"},
	{"tls without listen", head + "api: {tls_cert: /c, tls_key: /k}\n", "api.tls_cert", 4, "needs api.listen"},

	// checks
	{"check with no kind", service + "    checks: [{}]\n", "services[0].checks[0]", 7, "want one of http, tcp, exec, listen, process"},
	{"check with two kinds", service + "    checks:\n      - tcp: {address: \"h:1\"}\n        exec: {command: [x]}\n", "services[0].checks[0]", 8, "want exactly one of http, tcp, exec, listen, process, got exec and tcp"},
	{"check unknown kind", service + "    checks: [{grpc: {}}]\n", "services[0].checks[0].grpc", 7, "unknown key"},
	{"http without url", service + "    checks: [{http: {expect_status: 200}}]\n", "services[0].checks[0].http.url", 7, "required"},
	{"http url scheme", service + "    checks: [{http: {url: \"ftp://h/\"}}]\n", "services[0].checks[0].http.url", 7, "want an http:// or https:// URL"},
	{"http url without host", service + "    checks: [{http: {url: \"http:///x\"}}]\n", "services[0].checks[0].http.url", 7, "with a host"},
	{"http status too high", service + "    checks: [{http: {url: \"http://h/\", expect_status: 600}}]\n", "services[0].checks[0].http.expect_status", 7, `codes 100..599), got "600"`},
	{"http status range reversed", service + "    checks: [{http: {url: \"http://h/\", expect_status: 299-200}}]\n", "services[0].checks[0].http.expect_status", 7, `got "299-200"`},
	{"tcp without port", service + "    checks: [{tcp: {address: localhost}}]\n", "services[0].checks[0].tcp.address", 7, `want host:port`},
	{"tcp without host", service + "    checks: [{tcp: {address: \":80\"}}]\n", "services[0].checks[0].tcp.address", 7, `want host:port`},
	{"tcp named port", service + "    checks: [{tcp: {address: \"h:http\"}}]\n", "services[0].checks[0].tcp.address", 7, "want a port 1..65535"},
	{"exec empty command", service + "    checks: [{exec: {command: []}}]\n", "services[0].checks[0].exec.command", 7, "must name a program"},
	{"exec command a string", service + "    checks: [{exec: {command: /bin/true}}]\n", "services[0].checks[0].exec.command", 7, `want a list, got "/bin/true"`},
	{"listen without port", service + "    checks: [{listen: {address: 127.0.0.1}}]\n", "services[0].checks[0].listen.port", 7, "required"},
	{"listen port 0", service + "    checks: [{listen: {port: 0}}]\n", "services[0].checks[0].listen.port", 7, "must be 1..65535, got 0"},
	{"listen bad address", service + "    checks: [{listen: {port: 1, address: localhost}}]\n", "services[0].checks[0].listen.address", 7, `want an IP address, got "localhost"`},
	{"process with neither", service + "    checks: [{process: {}}]\n", "services[0].checks[0].process", 7, "want pid_file or name"},
	{"process with both", service + "    checks: [{process: {pid_file: /p, name: x}}]\n", "services[0].checks[0].process", 7, "not both"},
	{"process pid file relative", service + "    checks: [{process: {pid_file: nginx.pid}}]\n", "services[0].checks[0].process.pid_file", 7, "want an absolute path"},
	{"process name too long", service + "    checks: [{process: {name: systemd-resolved-x}}]\n", "services[0].checks[0].process.name", 7, `at most 15 bytes of a process name`},
	{"process name with slash", service + "    checks: [{process: {name: /usr/sbin/nginx}}]\n", "services[0].checks[0].process.name", 7, "no '/'"},
	{"exec empty program", service + "    checks: [{exec: {command: [\"\", x]}}]\n", "services[0].checks[0].exec.command[0]", 7, "must name a program"},

	// pools
	{"pool without name", head + "pools: [{prefixes: [192.0.2.0/28]}]\n", "pools[0].name", 4, "required"},
	{"pool without prefixes", head + "pools: [{name: p, prefixes: []}]\n", "pools[0].prefixes", 4, "at least one prefix"},
	{"pool outside allowed", head + "pools: [{name: p, prefixes: [198.51.100.0/28]}]\n", "pools[0].prefixes[0]", 4, "198.51.100.0/28 is outside bgp.allowed_prefixes"},
	{"pool wider than allowed", head + "pools: [{name: p, prefixes: [192.0.0.0/16]}]\n", "pools[0].prefixes[0]", 4, "outside bgp.allowed_prefixes"},
	{"pool over a VIP", service + "pools: [{name: p, prefixes: [192.0.2.0/28]}]\n", "pools[0].prefixes[0]", 7, `192.0.2.0/28 of pool "p" contains 192.0.2.1, a VIP of service "web"`},
	{"pools overlap", head + "pools:\n  - {name: p, prefixes: [192.0.2.0/28]}\n  - {name: q, prefixes: [192.0.2.8/29]}\n", "pools[1].prefixes[0]", 6, `192.0.2.8/29 of pool "q" overlaps 192.0.2.0/28 of pool "p"`},
	{"pool over loopback", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\npools: [{name: p, prefixes: [0.0.0.0/0]}]\n", "pools[0].prefixes[0]", 4, `0.0.0.0/0 of pool "p" overlaps 0.0.0.0/8`},
	{"pool over broadcast", "bgp:\n  asn: 1\n  allowed_prefixes: [0.0.0.0/0]\npools: [{name: p, prefixes: [255.255.255.252/30]}]\n", "pools[0].prefixes[0]", 4, "which is the broadcast address"},
	{"pool over a peer", "bgp:\n  asn: 1\n  allowed_prefixes: [10.0.0.0/8]\n  peers: [{address: 10.0.0.1, asn: 2}]\npools: [{name: p, prefixes: [10.0.0.0/24]}]\n", "pools[0].prefixes[0]", 5, "contains 10.0.0.1, the address of bgp.peers[0]"},
	{"pool name twice", head + "pools:\n  - {name: p, prefixes: [192.0.2.0/28]}\n  - {name: p, prefixes: [192.0.2.16/28]}\n", "pools[1].name", 6, `"p" is also the name of pools[0]`},

	// state_dir, api, metrics
	{"state dir relative", head + "state_dir: var/lib\n", "state_dir", 4, "want an absolute path"},
	{"socket relative", head + "api: {socket: vipd.sock}\n", "api.socket", 4, "want an absolute path"},
	{"socket too long", head + "api: {socket: /" + strings.Repeat("s", 107) + "}\n", "api.socket", 4, "at most 107 bytes"},
	{"api listen without token", head + "api:\n  listen: 127.0.0.1:10001\n", "api.token_file", 4, "required when api.listen is set"},
	{"api listen bad port", head + "api: {listen: \"127.0.0.1:0\", token_file: /t}\n", "api.listen", 4, "want a port 1..65535"},
	{"metrics listen not host:port", head + "metrics: {listen: 9477}\n", "metrics.listen", 4, `want host:port like "127.0.0.1:8080", got "9477"`},
	{"metrics a list", head + "metrics: []\n", "metrics", 4, "want a mapping, got a list"},
	{"kubernetes node name", head + "kubernetes: {node_name: Node_1}\n", "kubernetes.node_name", 4, "want a node name (RFC 1123 subdomain), got \"Node_1\""},
	{"kubernetes namespace", head + "kubernetes: {namespace: a.b}\n", "kubernetes.namespace", 4, "want a namespace (RFC 1123 label), got \"a.b\""},
	{"kubernetes class", head + "kubernetes: {load_balancer_class: \"a b\"}\n", "kubernetes.load_balancer_class", 4, "want a class like vipd.io/bgp, got \"a b\""},
	{"kubernetes lease", head + "kubernetes: {lease_duration: 1s}\n", "kubernetes.lease_duration", 4, "want a duration from 3s to 10m, got 1s"},
	{"kubernetes kubeconfig", head + "kubernetes: {kubeconfig: kube.conf}\n", "kubernetes.kubeconfig", 4, "want an absolute path"},
	{"kubernetes unknown key", head + "kubernetes: {nodes: [a]}\n", "kubernetes.nodes", 4, "unknown key"},
	// cluster
	{"cluster without etcd", head + "cluster: {node_name: n1}\n", "cluster.etcd", 4, "required"},
	{"cluster without endpoints", head + "cluster: {etcd: {prefix: /x}}\n", "cluster.etcd.endpoints", 4, "required"},
	{"cluster no endpoint", head + "cluster: {etcd: {endpoints: []}}\n", "cluster.etcd.endpoints", 4, "at least one"},
	{"cluster endpoint scheme", head + "cluster: {etcd: {endpoints: [\"10.0.0.1:2379\"]}}\n", "cluster.etcd.endpoints[0]", 4, "want a URL like http://10.0.0.1:2379"},
	{"cluster endpoint not http", head + "cluster: {etcd: {endpoints: [\"unix://a:1\"]}}\n", "cluster.etcd.endpoints[0]", 4, "want an http:// or https:// URL"},
	{"cluster endpoint port", head + "cluster: {etcd: {endpoints: [\"http://10.0.0.1\"]}}\n", "cluster.etcd.endpoints[0]", 4, "want a host and a port"},
	{"cluster endpoint credentials", head + "cluster: {etcd: {endpoints: [\"http://u:p@10.0.0.1:2379\"]}}\n", "cluster.etcd.endpoints[0]", 4, "credentials go in username and password_file"},
	{"cluster prefix", head + "cluster: {etcd: {endpoints: [\"http://a:1\"], prefix: vipd/}}\n", "cluster.etcd.prefix", 4, "want a prefix like /vipd"},
	{"cluster cert without key", head + "cluster: {etcd: {endpoints: [\"https://a:1\"], cert_file: /c.pem}}\n", "cluster.etcd.cert_file", 4, "cert_file and key_file go together"},
	{"cluster user without password", head + "cluster: {etcd: {endpoints: [\"https://a:1\"], username: vipd}}\n", "cluster.etcd.username", 4, "username and password_file go together"},
	{"cluster node name", head + "cluster: {node_name: Node_1, etcd: {endpoints: [\"http://a:1\"]}}\n", "cluster.node_name", 4, "want a node name"},
	{"cluster label name", head + "cluster: {labels: {\"a b\": x}, etcd: {endpoints: [\"http://a:1\"]}}\n", "cluster.labels.a b", 4, "want a label name"},
	{"cluster label value", head + "cluster: {labels: {rack: \"a b\"}, etcd: {endpoints: [\"http://a:1\"]}}\n", "cluster.labels.rack", 4, "want a label value"},
	{"cluster labels not a map", head + "cluster: {labels: [a], etcd: {endpoints: [\"http://a:1\"]}}\n", "cluster.labels", 4, "want a mapping of label: value"},
	{"cluster member ttl", head + "cluster: {member_ttl: 1s, etcd: {endpoints: [\"http://a:1\"]}}\n", "cluster.member_ttl", 4, "must be at least 2s"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrors(t, tc.yaml)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), &Errors{List: errs})
			}
			e := errs[0]
			if e.Path != tc.path || e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got  %s\nwant %s: …%s… (line %d)", e, tc.path, tc.msg, tc.line)
			}
		})
	}
}

func TestParseRefusesHugeDocuments(t *testing.T) {
	// Ten aliases per level, nine levels: 10^9 nodes once expanded.
	var bomb strings.Builder
	bomb.WriteString(head + "x0: &a0 [a, a, a, a, a, a, a, a, a, a]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&bomb, "x%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	deep := "bgp: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n"
	for name, tc := range map[string]struct{ yaml, msg string }{
		"alias bomb": {bomb.String(), "YAML aliases expand to too many nodes"},
		"deep":       {deep, "invalid YAML: exceeded max depth"},
	} {
		t.Run(name, func(t *testing.T) {
			errs := parseErrors(t, tc.yaml)
			if len(errs) != 1 || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("got %v, want one error with %q", &Errors{List: errs}, tc.msg)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	errs := parseErrors(t, string(readTestdata(t, "invalid.yaml")))
	type at struct {
		Path string
		Line int
	}
	var got []at
	for _, e := range errs {
		got = append(got, at{e.Path, e.Line})
	}
	want := []at{
		{"bgp.asn", 2},
		{"bgp.peers[0].asn", 6},
		{"bgp.peers[0].hold_time", 7},
		{"bgp.peers[0].bfd.min_ttl", 8},
		{"services[0].vips[1]", 11},
		{"services[0].rise", 12},
		{"services[0].checks[0]", 14},
		{"services[1].name", 16},
		{"services[1].vips[0]", 17},
		{"pools[0].prefixes[0]", 20},
		{"metrics.listen", 23},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error locations (-want +got):\n%s", diff)
	}
}

func TestErrorsFormat(t *testing.T) {
	errs := &Errors{List: []*FieldError{
		{Path: "services[0].vips[1]", Line: 23, Msg: "10.9.9.9 is outside bgp.allowed_prefixes"},
		{Path: "bgp", Msg: "required"},
		{Line: 4, Msg: "invalid YAML: oops"},
	}}
	want := "services[0].vips[1]: 10.9.9.9 is outside bgp.allowed_prefixes (line 23)\n" +
		"bgp: required\n" +
		"invalid YAML: oops (line 4)"
	if got := errs.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	errs.File = "/etc/vipd/vipd.yaml"
	if got := strings.Split(errs.Error(), "\n")[1]; got != "/etc/vipd/vipd.yaml: bgp: required" {
		t.Errorf("with File, line 2 = %q", got)
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse([]byte(head + "services: [{name: a, vips: [10.9.9.9]}]\n"))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(%v, *FieldError) = false", err)
	}
	if fe.Path != "services[0].vips[0]" || fe.Line != 4 {
		t.Errorf("FieldError = %+v, want services[0].vips[0] at line 4", fe)
	}
}
