package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// peerWithKey is a config whose one peer reads its key from keyFile;
// password_file is on line 7.
func peerWithKey(keyFile string) string {
	return head + "  peers:\n    - address: 10.0.0.1\n      asn: 1\n      password_file: " + keyFile + "\n"
}

func TestLoadPasswordFile(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want string
	}{
		{"trailing newline", "s3cret\n", "s3cret"},
		{"crlf", "s3cret\r\n", "s3cret"},
		{"no newline", "s3cret", "s3cret"},
		{"inner spaces kept", " two words ", " two words "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := writeFile(t, dir, "peer.key", tc.key)
			cfg, err := Load(writeFile(t, dir, "vipd.yaml", peerWithKey(key)))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			p := cfg.BGP.Peers[0]
			if p.Password.Reveal() != tc.want || p.PasswordFile != key {
				t.Errorf("peer password %q from %q, want %q from %q", p.Password.Reveal(), p.PasswordFile, tc.want, key)
			}
		})
	}
}

func TestLoadPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		key   string // path of the key file
		msg   string
		cause error
	}{
		{"missing", filepath.Join(dir, "absent.key"), "no such file", fs.ErrNotExist},
		{"empty", writeFile(t, dir, "empty.key", "\n"), "is empty", nil},
		{"too long", writeFile(t, dir, "long.key", strings.Repeat("k", 81)), "holds 81 bytes", nil},
		{"a directory", dir, "is a directory", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "vipd.yaml", peerWithKey(tc.key))
			_, err := Load(file)
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) != 1 {
				t.Fatalf("Load error %v, want one FieldError", err)
			}
			e := errs.List[0]
			if e.Path != "bgp.peers[0].password_file" || e.Line != 7 || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %s, want bgp.peers[0].password_file: …%s… (line 7)", e, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), file+": bgp.peers[0].password_file: ") {
				t.Errorf("error %q does not start with the config file's name", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.cause)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent.yaml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming %s", err, missing)
	}

	bad := writeFile(t, dir, "bad.yaml", head+"services: [{name: a, vips: [10.9.9.9]}]\n")
	_, err := Load(bad)
	want := bad + ": services[0].vips[0]: 10.9.9.9 is outside bgp.allowed_prefixes (line 4)"
	if err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.BGP.Peers[0].Password.Reveal(); got != "s3cret" {
		t.Errorf("inline password = %q, want s3cret", got)
	}
}
