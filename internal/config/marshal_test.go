package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// validTestdata lists the config files in testdata that must parse.
func validTestdata(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var valid []string
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), "invalid") {
			valid = append(valid, filepath.Base(f))
		}
	}
	if len(valid) < 4 {
		t.Fatalf("found only %d valid configs in testdata: %v", len(valid), valid)
	}
	return valid
}

// roundTrip marshals cfg, parses the result and reports any difference.
// It returns the marshalled text.
func roundTrip(t testing.TB, cfg *Config) []byte {
	t.Helper()
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
	}
	if diff := cmp.Diff(cfg, back, cmpOpts); diff != "" {
		t.Fatalf("Parse(Marshal()) differs (-before +after):\n%s\n%s", diff, out)
	}
	return out
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, name := range validTestdata(t) {
		t.Run(name, func(t *testing.T) {
			cfg := mustParse(t, string(readTestdata(t, name)))
			once := roundTrip(t, cfg)
			twice := roundTrip(t, mustParse(t, string(once)))
			if !bytes.Equal(once, twice) {
				t.Errorf("Marshal is not stable:\n%s\n---\n%s", once, twice)
			}
		})
	}
}

func TestMarshalWritesDefaults(t *testing.T) {
	out, err := mustParse(t, head+"  peers: [{address: 10.0.0.1, asn: 1}]\nservices: [{name: a, vips: [192.0.2.1]}]\nmetrics: {listen: \"\"}\n").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen_port: -1", "name: 10.0.0.1", "port: 179", "hold_time: 9s", "min_tx: 300ms",
		"interface: lo", "bind: true", "timeout: 1s", "on_down: withdraw",
		"state_dir: /var/lib/vipd", "socket: /run/vipd/vipd.sock", "metrics:\n  listen: \"\"",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "min_ttl") {
		t.Errorf("single-hop BFD got a min_ttl, which Parse refuses:\n%s", out)
	}
}

func TestMarshalPassword(t *testing.T) {
	out, err := mustParse(t, peer+"      password: s3cret\n").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "password: s3cret") {
		t.Errorf("Marshal redacted an inline password:\n%s", out)
	}

	dir := t.TempDir()
	key := writeFile(t, dir, "peer.key", "from-file\n")
	cfg, err := Load(writeFile(t, dir, "vipd.yaml", peerWithKey(key)))
	if err != nil {
		t.Fatal(err)
	}
	out = roundTripLoaded(t, cfg)
	if strings.Contains(string(out), "from-file") || !strings.Contains(string(out), "password_file: "+key) {
		t.Errorf("Marshal of a password_file peer wrote its content, or not its file:\n%s", out)
	}
}

// roundTripLoaded is roundTrip for a config from Load: Parse does not read
// password files, so the password is put back before comparing.
func roundTripLoaded(t *testing.T, cfg *Config) []byte {
	t.Helper()
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(out))
	for i := range back.BGP.Peers {
		back.BGP.Peers[i].Password = cfg.BGP.Peers[i].Password
	}
	if diff := cmp.Diff(cfg, back, cmpOpts); diff != "" {
		t.Fatalf("Parse(Marshal()) differs (-before +after):\n%s", diff)
	}
	return out
}

func TestHashAndSecrets(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "peer.key", "one\n")
	file := writeFile(t, dir, "vipd.yaml", peerWithKey(key))
	load := func() (*Config, string) {
		t.Helper()
		cfg, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := cfg.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return cfg, h
	}
	first, firstHash := load()
	if again, h := load(); h != firstHash || !again.SameSecrets(first) {
		t.Errorf("the same config: hashes %s and %s, same secrets %v", firstHash, h, again.SameSecrets(first))
	}
	// The hash is public: it must not depend on the password.
	writeFile(t, dir, "peer.key", "two\n")
	second, secondHash := load()
	if secondHash != firstHash {
		t.Errorf("a new key in the password file changed the public hash")
	}
	if second.SameSecrets(first) {
		t.Errorf("a new key in the password file: SameSecrets is still true")
	}
	writeFile(t, dir, "vipd.yaml", peerWithKey(key)+"      hold_time: 30s\n")
	if _, third := load(); third == secondHash {
		t.Errorf("a new hold time left the hash at %s", secondHash)
	}
}
