package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDataPlane(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want DataPlane
	}{
		{"absent", "", DataPlane{}},
		{"empty xdp", "dataplane: {xdp: {}}\n", DataPlane{}},
		{"interfaces", "dataplane:\n  xdp:\n    interfaces: [eth0, bond0.100]\n", DataPlane{XDP: XDP{Interfaces: []string{"eth0", "bond0.100"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(head + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg.DataPlane); diff != "" {
				t.Errorf("DataPlane (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDataPlaneErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, path, msg string
		line                  int
	}{
		{"unknown key", "dataplane: {nft: {}}\n", "dataplane.nft", "unknown key (want one of xdp)", 4},
		{"unknown xdp key", "dataplane:\n  xdp: {mode: native}\n", "dataplane.xdp.mode", "unknown key", 5},
		{"interface twice", "dataplane:\n  xdp:\n    interfaces: [eth0, eth0]\n", "dataplane.xdp.interfaces[1]", "listed twice", 6},
		{"bad interface name", "dataplane:\n  xdp:\n    interfaces: [\"a/b\"]\n", "dataplane.xdp.interfaces[0]", "interface name", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrors(t, head+tc.yaml)
			if len(errs) != 1 || errs[0].Path != tc.path || errs[0].Line != tc.line || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("errors %v, want one at %s (line %d) saying %q", errs, tc.path, tc.line, tc.msg)
			}
		})
	}
}
