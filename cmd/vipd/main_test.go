package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runRoot runs the whole CLI with args and returns its stdout.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := runRoot(t, args...)
		if err != nil || out != versionString()+"\n" {
			t.Errorf("vipd %s: %q, %v; want %q", strings.Join(args, " "), out, err, versionString()+"\n")
		}
	}
}

// TestCheckConfigCountsErrors: the summary counts in the right number.
func TestCheckConfigCountsErrors(t *testing.T) {
	for _, tc := range []struct {
		config, want string
	}{
		{"bgp: {asn: 0}\n", "(1 error)"},
		{"bgp: {asn: 0, listen_port: 0}\n", "(2 errors)"},
	} {
		path := filepath.Join(t.TempDir(), "vipd.yaml")
		if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runRoot(t, "check-config", "-c", path)
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("check-config %q: %v\n%s\nwant an error ending %q", tc.config, err, out, tc.want)
		}
	}
}
