package store

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/vipd/vipd/internal/lb"
)

func testLB(id, name, addr string) lb.LoadBalancer {
	spec := lb.Spec{
		Name: name, Port: 80, Pool: "default", Address: netip.MustParseAddr(addr), Ports: []uint16{443},
		Check: &lb.Check{Type: lb.CheckHTTP, Path: "/healthz"}, LocalPref: new(uint32(250)),
	}.WithDefaults()
	return lb.LoadBalancer{
		UUID: id, Spec: spec, Created: time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC),
		Backends: []lb.Backend{
			{UUID: id + "-b1", IP: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 1},
			{UUID: id + "-b2", IP: netip.MustParseAddr("10.0.0.2"), Port: 8080, Weight: 3},
		},
	}
}

func TestLoadBalancersSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	web, api, gone := testLB("u1", "web", "192.0.2.1"), testLB("u2", "api", "192.0.2.2"), testLB("u3", "gone", "192.0.2.3")
	local := lb.LoadBalancer{UUID: "u4", Spec: lb.Spec{Name: "local", Port: 53, Protocol: lb.UDP, Mode: lb.ModeLocal,
		Pool: "default", Address: netip.MustParseAddr("2001:db8::1")}.WithDefaults()}
	for _, l := range []lb.LoadBalancer{web, api, gone, local} {
		if err := s.PutLoadBalancer(l); err != nil {
			t.Fatal(err)
		}
	}
	web.Backends = web.Backends[:1] // an update replaces the record
	if err := s.PutLoadBalancer(web); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u3", "never-stored"} {
		if err := s.DeleteLoadBalancer(id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.LoadBalancers()
	if err != nil {
		t.Fatal(err)
	}
	want := []lb.LoadBalancer{web, api, local} // bbolt returns keys in order
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

func TestPutLoadBalancerNeedsUUID(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutLoadBalancer(testLB("", "web", "192.0.2.1")); err == nil {
		t.Error("stored a load balancer without a UUID")
	}
}

// A record that does not decode or does not validate fails the load,
// naming the record: it is never skipped or reset.
func TestBadLoadBalancerRecordIsAnError(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"not json", `{"name": `, "u9"},
		{"bad address", `{"name": "web", "address": "nope"}`, "u9"},
		{"invalid spec", `{"name": "web", "address": "192.0.2.1", "pool": "p", "port": 0, "protocol": "tcp", "mode": "nat", "on_empty": "withdraw"}`, "port"},
		{"backend without uuid", `{"name": "web", "address": "192.0.2.1", "pool": "p", "port": 80, "protocol": "tcp", "mode": "nat", "on_empty": "withdraw",
			"backends": [{"ip": "10.0.0.1", "port": 80, "weight": 1}]}`, "backends[0].uuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketLoadBalancers).Put([]byte("u9"), []byte(tc.value))
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.LoadBalancers()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "u9") {
				t.Errorf("LoadBalancers() = %v, want an error naming u9 and %s", err, tc.want)
			}
		})
	}
}

// FuzzDecodeLB feeds arbitrary records to the decoder: it must never
// panic, and whatever it accepts must encode back to a record that
// decodes to the same load balancer.
func FuzzDecodeLB(f *testing.F) {
	for _, l := range []lb.LoadBalancer{testLB("u1", "web", "192.0.2.1"), testLB("u2", "v6", "2001:db8::7")} {
		v, err := json.Marshal(toRecord(l))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add([]byte(`{"name": "x", "backends": null}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		l, err := UnmarshalLoadBalancer("u", v)
		if err != nil {
			return
		}
		again, err := json.Marshal(toRecord(l))
		if err != nil {
			t.Fatal(err)
		}
		l2, err := UnmarshalLoadBalancer("u", again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, again)
		}
		if diff := cmp.Diff(l, l2, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

// A record written before checks had a fast interval loads with the
// default, the smaller of 1s and the interval.
func TestOldCheckRecordGetsFastInterval(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := `{"name": "web", "address": "192.0.2.1", "pool": "p", "port": 80, "protocol": "tcp", "mode": "nat", "on_empty": "withdraw",
		"check": {"type": "tcp", "interval_ns": 15000000000, "timeout_ns": 1000000000, "rise": 2, "fall": 2}, "backends": []}`
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLoadBalancers).Put([]byte("u1"), []byte(old)) })
	if err != nil {
		t.Fatal(err)
	}
	lbs, err := s.LoadBalancers()
	if err != nil || len(lbs) != 1 || lbs[0].Spec.Check == nil {
		t.Fatalf("LoadBalancers() = %+v, %v", lbs, err)
	}
	if got := lbs[0].Spec.Check.FastInterval; got != time.Second {
		t.Errorf("fast interval %v, want 1s", got)
	}
	// Records from before local_pref get the default.
	if got := lbs[0].Spec.LocalPref; got == nil || *got != 100 {
		t.Errorf("local pref %v, want 100", got)
	}
}
