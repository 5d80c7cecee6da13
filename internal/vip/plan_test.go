package vip

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// TestMakePlan covers the decisions one by one, including an interface
// lookup failure, which a real kernel does not produce on demand.
func TestMakePlan(t *testing.T) {
	a := addr(t, "192.0.2.1", "lo")
	b := addr(t, "192.0.2.2", "lo")
	v6 := addr(t, "2001:db8::1", "lo")
	gone := addr(t, "192.0.2.3", "vtgone")
	hidden := addr(t, "192.0.2.4", "vterr")

	snap := &snapshot{
		links: map[string]linkState{
			"lo":     {link: &netlink.Device{}},
			"vtgone": {},
			"vterr":  {err: errInjected},
		},
		prefixes: map[Address][]int{
			a:  {32},
			b:  {24},
			v6: {64},
		},
	}

	tests := []struct {
		name     string
		desired  []Address
		recorded []Address
		want     plan
		wantErrs []string
	}{
		{
			name:    "desired, nobody's, absent: add",
			desired: []Address{addr(t, "192.0.2.9", "lo")},
			want:    plan{add: []Address{addr(t, "192.0.2.9", "lo")}},
		},
		{
			name:     "desired, ours, present as host address: keep",
			desired:  []Address{a},
			recorded: []Address{a},
			want:     plan{keep: []Address{a}},
		},
		{
			name:    "desired, not ours, present with any prefix: foreign",
			desired: []Address{a, b, v6},
			want:    plan{foreign: []Address{a, b, v6}},
		},
		{
			name:     "desired, ours, present only with another prefix: add again",
			desired:  []Address{b},
			recorded: []Address{b},
			want:     plan{add: []Address{b}},
		},
		{
			name:     "undesired, ours, present: remove",
			recorded: []Address{a},
			want:     plan{remove: []Address{a}},
		},
		{
			name:     "undesired, ours, absent or other prefix: forget",
			recorded: []Address{b, addr(t, "192.0.2.9", "lo")},
			want:     plan{forget: []Address{b, addr(t, "192.0.2.9", "lo")}},
		},
		{
			name:     "interface gone: forget, and fail if desired",
			desired:  []Address{gone},
			recorded: []Address{gone, addr(t, "192.0.2.5", "vtgone")},
			want:     plan{forget: []Address{addr(t, "192.0.2.3", "vtgone"), addr(t, "192.0.2.5", "vtgone")}},
			wantErrs: []string{"vip 192.0.2.3 on vtgone: bind: interface not found"},
		},
		{
			name:     "interface lookup failed: keep the record, fail if desired",
			desired:  []Address{hidden},
			recorded: []Address{hidden, addr(t, "192.0.2.6", "vterr")},
			want:     plan{},
			wantErrs: []string{"vip 192.0.2.4 on vterr: look up interface: injected failure"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := validate(tc.desired)
			if err != nil {
				t.Fatal(err)
			}
			got := makePlan(want, tc.recorded, snap)
			var errText []string
			for _, err := range got.failed {
				errText = append(errText, err.Error())
			}
			got.failed = nil
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(plan{}), cmpAddr); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErrs, errText); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		addr Address
		want string
	}{
		{"no address", Address{Interface: "lo"}, "invalid IP address"},
		{"no interface", addr(t, "192.0.2.1", ""), "no interface"},
		{"zone", addr(t, "fe80::1%lo", "lo"), "has a zone"},
		{"IPv4-mapped", addr(t, "::ffff:192.0.2.1", "lo"), "IPv4-mapped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := validate([]Address{tc.addr, addr(t, "192.0.2.9", "lo")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate error = %v, want it to contain %q", err, tc.want)
			}
			if len(want) != 1 {
				t.Errorf("validate kept %d addresses, want only the good one", len(want))
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != 1 {
				t.Errorf("validate error %v, want exactly one failure", err)
			}
		})
	}
}
