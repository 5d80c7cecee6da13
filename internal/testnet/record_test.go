package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestParseProcStat(t *testing.T) {
	// Fields 3 to 22 of a real line; the command name is field 2.
	tail := " S 1 2 3 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 123456 1000 10"
	for _, tt := range []struct {
		name, line string
		started    uint64
		state      byte
		wantErr    bool
	}{
		{name: "plain", line: "42 (bird)" + tail, started: 123456, state: 'S'},
		{name: "spaces and parens in name", line: "42 (a) b (c)" + tail, started: 123456, state: 'S'},
		{name: "zombie", line: "42 (vipd)" + strings.Replace(tail, " S ", " Z ", 1), started: 123456, state: 'Z'},
		{name: "no name", line: "42 bird" + tail, wantErr: true},
		{name: "short", line: "42 (bird) S 1 2 3", wantErr: true},
		{name: "bad start time", line: "42 (bird)" + strings.Replace(tail, "123456", "x", 1), wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			started, state, err := parseProcStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseProcStat(%q) error %v, want error %v", tt.line, err, tt.wantErr)
			}
			if started != tt.started || state != tt.state {
				t.Errorf("parseProcStat(%q) = %d, %q; want %d, %q", tt.line, started, state, tt.started, tt.state)
			}
		})
	}
}

// recordWorld is an unbuilt world that keeps a record, with a temp dir,
// recorded namespaces that do not exist and one running process (sleep,
// not in a namespace), so Load and Close can be tested without root.
func recordWorld(t *testing.T) (*World, *Process) {
	t.Helper()
	prefix := fmt.Sprintf("vt%d-rec", os.Getpid())
	n1 := NodeSpec{Name: "n1", Address: n1v4}
	spec := Spec{
		Prefix: prefix,
		Record: filepath.Join(t.TempDir(), "world.json"),
		Routers: []RouterSpec{{Name: "r1", Kind: BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: []Neighbor{{Address: n1v4, ASN: nodeASN, Password: "pw", BFD: &BFDSpec{MinTx: 100 * time.Millisecond}}}}},
		Nodes:  []NodeSpec{n1},
		Client: &NodeSpec{Name: "client", Address: addr("10.255.255.100")},
	}.withDefaults()
	dir, err := os.MkdirTemp("", "testnet-"+prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &World{spec: spec, dir: dir, namespaces: []string{prefix + "-lan", prefix + "-r1", prefix + "-n1"}, nextID: 2}
	if err := os.Mkdir(filepath.Join(dir, "n1"), 0o755); err != nil {
		t.Fatal(err)
	}
	argv := []string{"sleep", "60"}
	p, err := spawn("n1/sleep", filepath.Join(dir, "n1", "sleep.log"), argv, argv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	w.procs = []*Process{p}
	if err := w.persist(); err != nil {
		t.Fatal(err)
	}
	return w, p
}

// rewriteRecord applies change to the record in path.
func rewriteRecord(t *testing.T, path string, change func(*record)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := parseRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	change(&rec)
	if data, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRecordRoundTrip: a loaded world has the built one's spec, members
// and processes, and its Close ends the adopted process and removes the
// temp dir and the record, skipping namespaces that are already gone.
func TestRecordRoundTrip(t *testing.T) {
	w, p := recordWorld(t)
	got, err := Load(w.spec.Record)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w.Spec(), got.Spec(), addrCmp, prefixCmp); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got.Dir() != w.Dir() {
		t.Errorf("dir %q, want %q", got.Dir(), w.Dir())
	}
	n1 := got.Node("n1")
	if n1 == nil || n1.Namespace() != w.Prefix()+"-n1" || n1.Addr6() != n1v6 || n1.Dir() != filepath.Join(w.Dir(), "n1") {
		t.Fatalf("loaded n1 = %+v", n1)
	}
	if c := got.Client(); c == nil || c.Namespace() != w.Prefix()+"-client" {
		t.Errorf("loaded client = %+v", c)
	}
	bird, ok := got.Router("r1").daemon.(*birdDaemon)
	if !ok || bird.sock != filepath.Join(w.Dir(), "r1", "bird.sock") || bird.peers["peer1"] != n1v4 {
		t.Errorf("loaded r1 daemon = %+v", got.Router("r1").daemon)
	}
	procs := got.Processes()
	if len(procs) != 1 || procs[0].PID() != p.PID() || procs[0].Name() != "n1/sleep" || procs[0].LogPath() != p.LogPath() ||
		!cmp.Equal(procs[0].Args(), []string{"sleep", "60"}) {
		t.Fatalf("loaded processes %+v, want the sleep (pid %d)", procs, p.PID())
	}
	if procs[0].Exited() {
		t.Fatal("adopted sleep counts as exited while it runs")
	}
	if err := procs[0].Wait(100 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Wait on the running adopted sleep: %v, want ErrStillRunning", err)
	}
	if err := got.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(10 * time.Second); errors.Is(err, ErrStillRunning) {
		t.Errorf("the sleep outlived the loaded world's Close")
	}
	if !procs[0].Exited() {
		t.Errorf("adopted sleep not Exited after Close")
	}
	for _, path := range []string{w.Dir(), w.spec.Record} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Close: %v", path, err)
		}
	}
}

// TestRecordReusedPID: a recorded PID whose process has a different start
// time is another process that got the PID: it is never signalled.
func TestRecordReusedPID(t *testing.T) {
	w, p := recordWorld(t)
	rewriteRecord(t, w.spec.Record, func(rec *record) { rec.Processes[0].Started++ })
	got, err := Load(w.spec.Record)
	if err != nil {
		t.Fatal(err)
	}
	adopted := got.Processes()[0]
	if !adopted.Exited() {
		t.Error("a reused PID counts as the recorded process")
	}
	if err := adopted.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal to a reused PID: %v, want os.ErrProcessDone", err)
	}
	if err := got.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(500 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Errorf("the process on the reused PID ended: %v", err)
	}
}

// TestRecordOtherBoot: no process of a record from an earlier boot is
// adopted.
func TestRecordOtherBoot(t *testing.T) {
	w, p := recordWorld(t)
	rewriteRecord(t, w.spec.Record, func(rec *record) { rec.BootID = "an-earlier-boot" })
	got, err := Load(w.spec.Record)
	if err != nil {
		t.Fatal(err)
	}
	if procs := got.Processes(); len(procs) != 0 {
		t.Errorf("adopted %d processes from another boot", len(procs))
	}
	if err := got.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(500 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Errorf("a process named in an earlier boot's record ended: %v", err)
	}
}

// TestLoadBadRecord: a record that is not JSON of the format, or that
// names anything its world would not have made, is refused whole.
func TestLoadBadRecord(t *testing.T) {
	w, _ := recordWorld(t)
	good, err := os.ReadFile(w.spec.Record)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(change func(*record)) string {
		rec, err := parseRecord(good)
		if err != nil {
			t.Fatal(err)
		}
		change(&rec)
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range []struct {
		name, data, want string
	}{
		{"empty", "", "EOF"},
		{"not json", "vlab\n", "invalid character"},
		{"truncated", string(good[:len(good)/2]), "unexpected EOF"},
		{"trailing data", string(good) + "{}", "data after the record"},
		{"unknown field", strings.Replace(string(good), `"version"`, `"color": 1, "version"`, 1), "unknown field"},
		{"version", edit(func(r *record) { r.Version = 2 }), "version 2"},
		{"prefix", edit(func(r *record) { r.Spec.Prefix = "../x" }), "prefix"},
		{"root dir", edit(func(r *record) { r.Dir = "/" }), "not a temp dir"},
		{"other dir", edit(func(r *record) { r.Dir = "/tmp/other" }), "not a temp dir"},
		{"foreign namespace", edit(func(r *record) { r.Namespaces = append(r.Namespaces, "other-lan") }), `namespace "other-lan"`},
		{"foreign run dir", edit(func(r *record) { r.RunDirs = []string{"/etc"} }), `run dir "/etc"`},
		{"init", edit(func(r *record) { r.Processes[0].PID = 1 }), "pid above 1"},
		{"log elsewhere", edit(func(r *record) { r.Processes[0].Log = "/etc/passwd" }), "is not in"},
		{"bad spec", edit(func(r *record) { r.Spec.Nodes[0].Name = "N 1" }), "spec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "world.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Load: %v; want ErrBadRecord naming %s and saying %q", err, path, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

// FuzzParseRecord checks that a record that parses encodes and parses
// back to itself.
func FuzzParseRecord(f *testing.F) {
	spec := Spec{
		Prefix: "vlab", Record: "/run/vipd-lab/vlab.json",
		Routers: []RouterSpec{{Name: "r1", Kind: BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: []Neighbor{{Address: n1v4, ASN: nodeASN, BFD: &BFDSpec{}}}}},
		Nodes: []NodeSpec{{Name: "n1", Address: n1v4}},
	}.withDefaults()
	seed, err := json.Marshal(record{
		Version: recordVersion, BootID: "b", Spec: spec, Dir: "/tmp/testnet-vlab-1",
		Namespaces: []string{"vlab-lan", "vlab-r1"}, RunDirs: []string{frrRunDir + "/vlab-r1"},
		Processes: []processRecord{{Name: "r1/bird", PID: 42, Started: 7, Log: "/tmp/testnet-vlab-1/r1/bird.log", Args: []string{"bird", "-f"}}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseRecord(data)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("parseRecord error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record %s: %v", again, err)
		}
		if diff := cmp.Diff(rec, back, addrCmp, prefixCmp); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}
