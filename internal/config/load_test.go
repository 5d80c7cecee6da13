package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	// The example's token file is /etc/vipd/api.token; Load reads it, so
	// point it at one of the test's.
	dir := t.TempDir()
	token := writeFile(t, dir, "api.token", "t0ken\n")
	example := strings.Replace(string(readTestdata(t, "example.yaml")), "/etc/vipd/api.token", token, 1)
	cfg, err := Load(writeFile(t, dir, "vipd.yaml", example))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.BGP.Peers[0].Password.Reveal(); got != "s3cret" {
		t.Errorf("inline password = %q, want s3cret", got)
	}
}

// apiWithToken is a config whose TCP API reads its token from file;
// token_file is on line 4.
func apiWithToken(file string) string {
	return head + "api: {listen: \"127.0.0.1:10001\", token_file: " + file + "}\n"
}

func TestLoadChecksTheTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, token, msg string
	}{
		{"inner space", "two words\n", "printable ASCII without spaces"},
		{"empty", " \n", "is empty"},
		{"control character", "ab\x01cd", "printable ASCII without spaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, tc.name+".token", tc.token)
			_, err := Load(writeFile(t, dir, "vipd.yaml", apiWithToken(file)))
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) != 1 {
				t.Fatalf("Load error %v, want one FieldError", err)
			}
			e := errs.List[0]
			if e.Path != "api.token_file" || e.Line != 4 || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %s, want api.token_file: …%s… (line 4)", e, tc.msg)
			}
			if secret := strings.TrimSpace(tc.token); secret != "" && strings.Contains(err.Error(), secret) {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
	good := writeFile(t, dir, "good.token", "  s3cret-t0ken\n")
	if _, err := Load(writeFile(t, dir, "vipd.yaml", apiWithToken(good))); err != nil {
		t.Errorf("good token: %v", err)
	}
}

func TestLoadRefusesOddFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxConfigSize+1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	tests := []struct {
		name, path, msg string
	}{
		{"FIFO", fifo, "is a FIFO, not a regular file"},
		{"device", "/dev/zero", "is a character device, not a regular file"},
		{"directory", dir, "is a directory, not a regular file"},
		{"too large", big, "more than the 16777216 allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Load(%s) = %v, want an error with %q", tc.path, err, tc.msg)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Load(%s) took %s", tc.path, d)
			}
		})
	}
	// A key file is held to the same rules, naming the field.
	_, err := Load(writeFile(t, dir, "vipd.yaml", peerWithKey(fifo)))
	if err == nil || !strings.Contains(err.Error(), "bgp.peers[0].password_file: "+fifo+" is a FIFO") {
		t.Errorf("password_file at a FIFO: %v", err)
	}
}

func TestBFDAuth(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "bfd.key", "from-a-file\n")
	yaml := head + "  peers:\n" +
		"    - {address: 10.0.0.1, asn: 1, bfd: {enabled: true, auth: {type: keyed_sha1, key: inline-key}}}\n" +
		"    - {address: 10.0.0.2, asn: 1, bfd: {enabled: true, auth: {type: meticulous_keyed_md5, key_id: 7, key_file: " + keyFile + "}}}\n"
	cfg, err := Load(writeFile(t, dir, "vipd.yaml", yaml))
	if err != nil {
		t.Fatal(err)
	}
	want := []BFDAuth{
		{Type: BFDAuthKeyedSHA1, KeyID: 1, Key: "inline-key"},
		{Type: BFDAuthMeticulousKeyedMD5, KeyID: 7, Key: "from-a-file", KeyFile: keyFile},
	}
	for i, w := range want {
		if got := cfg.BGP.Peers[i].BFD.Auth; got != w {
			t.Errorf("peers[%d].bfd.auth = %+v (key %q), want %+v", i, got, got.Key.Reveal(), w)
		}
	}
	// The key never reaches the (public) hash, and a new key is a change.
	other, _ := Load(writeFile(t, dir, "other.yaml", strings.Replace(yaml, "inline-key", "other-key", 1)))
	h1, _ := cfg.Hash()
	h2, _ := other.Hash()
	if h1 != h2 || cfg.SameSecrets(other) {
		t.Errorf("a changed BFD key: hashes %s %s (want equal), SameSecrets %v (want false)", h1, h2, cfg.SameSecrets(other))
	}
	long := writeFile(t, dir, "long.key", strings.Repeat("k", 17))
	_, err = Load(writeFile(t, dir, "long.yaml", strings.Replace(yaml, keyFile, long, 1)))
	if err == nil || !strings.Contains(err.Error(), "bgp.peers[1].bfd.auth.key_file: "+long+" holds 17 bytes") {
		t.Errorf("a 17-byte MD5 key file: %v", err)
	}
}
