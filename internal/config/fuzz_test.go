package config

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that every config it accepts
// keeps the invariants the rest of vipd relies on and hashes the same
// twice, and that every error it returns says something.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed configs in testdata (%v)", err)
	}
	for _, file := range files {
		f.Add(readTestdata(f, filepath.Base(file)))
	}
	for _, tc := range validCases {
		f.Add([]byte(tc.yaml))
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			checkErrors(t, err)
			return
		}
		checkInvariants(t, cfg)
		if h1, h2 := mustHash(t, cfg), mustHash(t, cfg); h1 != h2 {
			t.Fatalf("Hash is not stable: %s then %s", h1, h2)
		}
	})
}

func checkErrors(t *testing.T, err error) {
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) == 0 {
		t.Fatalf("error %v (%T) is no non-empty *Errors", err, err)
	}
	for _, e := range errs.List {
		if e.Path == "" && e.Msg == "" {
			t.Fatalf("error without path or message: %#v", e)
		}
	}
}

// checkInvariants asserts what a valid Config promises its users.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	b := cfg.BGP
	must := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Fatalf(format, args...)
		}
	}
	must(b.ASN >= 1, "asn %d", b.ASN)
	if k := cfg.Kubernetes; k != nil {
		must(k.LeaseDuration >= 3*time.Second && k.LeaseDuration <= 10*time.Minute, "kubernetes.lease_duration %v", k.LeaseDuration)
		must(k.Interface != "", "kubernetes.interface empty")
		must(k.Kubeconfig == "" || filepath.IsAbs(k.Kubeconfig), "kubernetes.kubeconfig %q", k.Kubeconfig)
	}
	must(b.ListenPort == -1 || b.ListenPort >= 1, "listen_port %d", b.ListenPort)
	must(!b.RouterID.IsValid() || b.RouterID.Is4(), "router_id %s", b.RouterID)
	for _, p := range b.AllowedPrefixes {
		must(p == p.Masked(), "allowed prefix %s is not masked", p)
	}
	for _, p := range b.Peers {
		must(p.Address.IsValid() && p.ASN >= 1 && p.Port >= 1 && p.Name != "", "peer %+v", p)
		must(!p.Multihop || p.TTL == 0, "peer %s: multihop and ttl", p.Name)
		must(p.Password == "" || p.PasswordFile == "", "peer %s: password and password_file", p.Name)
		must(p.HoldTime == 0 || p.HoldTime >= 3*time.Second && p.HoldTime%time.Second == 0, "peer %s: hold_time %s", p.Name, p.HoldTime)
		must(len(p.Families) > 0, "peer %s: no families", p.Name)
		must(p.BFD.MinTx >= minInterval && p.BFD.MinRx >= minInterval && p.BFD.Multiplier >= 1, "peer %s: bfd %+v", p.Name, p.BFD)
		must(p.BFD.Multihop == (p.BFD.MinTTL != 0), "peer %s: bfd multihop %v with min_ttl %d", p.Name, p.BFD.Multihop, p.BFD.MinTTL)
	}
	owner := map[netip.Addr]string{}
	for _, s := range cfg.Services {
		must(namePattern.MatchString(s.Name) && len(s.VIPs) > 0, "service %+v", s)
		must(s.Rise >= 1 && s.Fall >= 1, "service %s: rise %d fall %d", s.Name, s.Rise, s.Fall)
		must(s.Interval >= minInterval && s.Timeout > 0 && s.Timeout <= s.Interval, "service %s: interval %s timeout %s", s.Name, s.Interval, s.Timeout)
		must(s.FastInterval >= minInterval && s.FastInterval <= s.Interval, "service %s: fast_interval %s interval %s", s.Name, s.FastInterval, s.Interval)
		must(s.OnDown == OnDownWithdraw || s.OnDown == OnDownDegrade, "service %s: on_down %q", s.Name, s.OnDown)
		for _, vip := range s.VIPs {
			must(slices.ContainsFunc(b.AllowedPrefixes, func(p netip.Prefix) bool { return p.Contains(vip) }),
				"service %s: VIP %s outside allowed_prefixes %v", s.Name, vip, b.AllowedPrefixes)
			_, dup := owner[vip]
			must(!dup, "VIP %s in services %s and %s", vip, owner[vip], s.Name)
			owner[vip] = s.Name
		}
		for _, c := range s.Checks {
			kinds := 0
			for _, set := range []bool{c.HTTP != nil, c.TCP != nil, c.Exec != nil, c.Listen != nil, c.Process != nil} {
				if set {
					kinds++
				}
			}
			must(kinds == 1, "service %s: check %+v has %d kinds", s.Name, c, kinds)
			must(c.Exec == nil || len(c.Exec.Command) > 0 && c.Exec.Command[0] != "", "service %s: empty command", s.Name)
			must(c.Listen == nil || c.Listen.Port >= 1, "service %s: listen port 0", s.Name)
			must(c.Process == nil || (c.Process.PIDFile == "") != (c.Process.Name == ""), "service %s: process %+v", s.Name, c.Process)
		}
	}
	for _, pool := range cfg.Pools {
		for _, p := range pool.Prefixes {
			for vip := range owner {
				must(!p.Contains(vip), "pool %s prefix %s contains VIP %s", pool.Name, p, vip)
			}
		}
	}
	must(filepath.IsAbs(cfg.StateDir) && filepath.IsAbs(cfg.API.Socket), "paths %q %q", cfg.StateDir, cfg.API.Socket)
	must(cfg.API.Listen == "" || cfg.API.TokenFile != "", "api listen without token")
}
