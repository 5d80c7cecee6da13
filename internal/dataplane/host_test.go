package dataplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeTree creates files (path -> content) under a temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readTree(t *testing.T, root string, paths ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		out[p] = strings.TrimSpace(string(b))
	}
	return out
}

func TestApplyHostSettings(t *testing.T) {
	root := writeTree(t, map[string]string{
		"net/ipv4/ip_forward":                  "0",
		"net/ipv4/conf/all/rp_filter":          "0",
		"net/ipv4/conf/default/rp_filter":      "1",
		"net/ipv4/conf/eth0/rp_filter":         "2",
		"net/ipv4/conf/eth0.100/rp_filter":     "1",
		"net/ipv6/conf/all/forwarding":         "0",
		"net/ipv6/conf/all/accept_ra":          "1",
		"net/ipv6/conf/default/accept_ra":      "1",
		"net/ipv6/conf/eth0/accept_ra":         "1",
		"net/ipv6/conf/lo/accept_ra":           "0",
		"net/ipv6/conf/eth0.100/accept_ra":     "2",
		"net/ipv6/conf/eth0.100/unrelated_opt": "1",
	})
	got, err := ApplyHostSettings(root, true)
	if err != nil {
		t.Fatalf("ApplyHostSettings: %v", err)
	}
	want := []Setting{
		{Name: "net.ipv6.conf.all.accept_ra", Was: "1", Want: "2"},
		{Name: "net.ipv6.conf.default.accept_ra", Was: "1", Want: "2"},
		{Name: "net.ipv6.conf.eth0.accept_ra", Was: "1", Want: "2"},
		{Name: "net.ipv4.ip_forward", Was: "0", Want: "1"},
		{Name: "net.ipv6.conf.all.forwarding", Was: "0", Want: "1"},
		{Name: "net.ipv4.conf.default.rp_filter", Was: "1", Want: "2"},
		{Name: "net.ipv4.conf.eth0/100.rp_filter", Was: "1", Want: "2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	wantFiles := map[string]string{
		"net/ipv4/ip_forward":              "1",
		"net/ipv4/conf/all/rp_filter":      "0",
		"net/ipv4/conf/default/rp_filter":  "2",
		"net/ipv4/conf/eth0/rp_filter":     "2",
		"net/ipv4/conf/eth0.100/rp_filter": "2",
		"net/ipv6/conf/all/forwarding":     "1",
		"net/ipv6/conf/eth0/accept_ra":     "2",
		"net/ipv6/conf/lo/accept_ra":       "0",
	}
	if diff := cmp.Diff(wantFiles, readTree(t, root, keys(wantFiles)...)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// A repeat changes nothing and still reports the forwarding settings.
	got, err = ApplyHostSettings(root, true)
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	want = []Setting{
		{Name: "net.ipv4.ip_forward", Was: "1", Want: "1"},
		{Name: "net.ipv6.conf.all.forwarding", Was: "1", Want: "1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("repeat: settings (-want +got):\n%s", diff)
	}
}

func TestApplyHostSettingsWithoutForwarding(t *testing.T) {
	root := writeTree(t, map[string]string{"net/ipv4/ip_forward": "0", "net/ipv6/conf/eth0/accept_ra": "1"})
	got, err := ApplyHostSettings(root, false)
	if err != nil || got != nil {
		t.Fatalf("ApplyHostSettings(false) = %v, %v; want nothing", got, err)
	}
	if diff := cmp.Diff(map[string]string{"net/ipv4/ip_forward": "0", "net/ipv6/conf/eth0/accept_ra": "1"},
		readTree(t, root, "net/ipv4/ip_forward", "net/ipv6/conf/eth0/accept_ra")); diff != "" {
		t.Errorf("files changed (-want +got):\n%s", diff)
	}
}

func TestApplyHostSettingsWithoutIPv6(t *testing.T) {
	root := writeTree(t, map[string]string{"net/ipv4/ip_forward": "0", "net/ipv4/conf/all/rp_filter": "1"})
	got, err := ApplyHostSettings(root, true)
	if err != nil {
		t.Fatalf("ApplyHostSettings: %v", err)
	}
	want := []Setting{
		{Name: "net.ipv4.ip_forward", Was: "0", Want: "1"},
		{Name: "net.ipv4.conf.all.rp_filter", Was: "1", Want: "2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestApplyHostSettingsReportsErrors(t *testing.T) {
	root := writeTree(t, map[string]string{"net/ipv4/conf/all/rp_filter": "1"})
	got, err := ApplyHostSettings(root, true)
	if err == nil || !strings.Contains(err.Error(), "dataplane: sysctl net.ipv4.ip_forward:") {
		t.Fatalf("error %v, want one naming net.ipv4.ip_forward", err)
	}
	// It carries on past the failure.
	if diff := cmp.Diff([]Setting{{Name: "net.ipv4.conf.all.rp_filter", Was: "1", Want: "2"}}, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
