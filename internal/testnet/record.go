package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// recordVersion is the format of a world's record; Load refuses others.
const recordVersion = 1

// bootIDPath names the running boot: a record from an earlier boot holds
// no live process.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// ErrBadRecord is returned by Load for a record it cannot trust: not JSON
// of the known format, or naming namespaces, directories or processes
// that are not its world's. Load then touches nothing.
var ErrBadRecord = errors.New("bad world record")

// recordPrefix is what a record's prefix must look like: it becomes part
// of namespace and directory names that Close deletes.
var recordPrefix = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// record is what a world keeps in Spec.Record: everything Close removes,
// and the spec, from which Load rebuilds the members.
type record struct {
	Version    int             `json:"version"`
	BootID     string          `json:"boot_id"`
	Spec       Spec            `json:"spec"` // defaulted
	Dir        string          `json:"dir"`
	Namespaces []string        `json:"namespaces"`
	RunDirs    []string        `json:"run_dirs"`
	NextID     int             `json:"next_id"`
	Processes  []processRecord `json:"processes"`
}

// processRecord identifies a process by PID and start time: together they
// name one process for the life of the boot.
type processRecord struct {
	Name    string   `json:"name"`
	PID     int      `json:"pid"`
	Started uint64   `json:"started"` // clock ticks after boot, /proc/PID/stat field 22
	Log     string   `json:"log"`
	Args    []string `json:"args"`
}

var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
})

// persist writes the world's record, if it keeps one.
func (w *World) persist() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.persistLocked()
}

// persistLocked is persist with w.mu held. It replaces the file in one
// rename, so a reader never sees half a record.
func (w *World) persistLocked() error {
	if w.spec.Record == "" {
		return nil
	}
	boot, err := bootID()
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	rec := record{
		Version: recordVersion, BootID: boot, Spec: w.spec, Dir: w.dir,
		Namespaces: w.namespaces, RunDirs: w.runDirs, NextID: w.nextID,
	}
	for _, p := range w.procs {
		rec.Processes = append(rec.Processes, processRecord{Name: p.name, PID: p.pid, Started: p.started, Log: p.logPath, Args: p.args})
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	tmp := w.spec.Record + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Rename(tmp, w.spec.Record); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// Load rebuilds the world whose record is the file path, as another
// program's New (with Spec.Record) left it, without changing anything:
// its members answer queries, and Close removes it and the record. The
// processes it started are adopted (see Process); none from an earlier
// boot is. A missing file is an error that wraps os.ErrNotExist, an
// untrustworthy one wraps ErrBadRecord.
func Load(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testnet: load: %w", err)
	}
	rec, err := parseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("testnet: load %s: %w", path, err)
	}
	rec.Spec.Record = path
	w, err := rec.world()
	if err != nil {
		return nil, fmt.Errorf("testnet: load %s: %w", path, err)
	}
	return w, nil
}

// parseRecord decodes and checks a record.
func parseRecord(data []byte) (record, error) {
	var rec record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return record{}, fmt.Errorf("%w: data after the record", ErrBadRecord)
	}
	if err := rec.validate(); err != nil {
		return record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return rec, nil
}

// validate accepts a record whose every path and name is one its world
// would make: Close deletes them.
func (rec record) validate() error {
	var errs []error
	if rec.Version != recordVersion {
		errs = append(errs, fmt.Errorf("version %d, want %d", rec.Version, recordVersion))
	}
	if rec.BootID == "" {
		errs = append(errs, errors.New("no boot id"))
	}
	prefix := rec.Spec.Prefix
	if !recordPrefix.MatchString(prefix) {
		return errors.Join(append(errs, fmt.Errorf("prefix %q: want one matching %s", prefix, recordPrefix))...)
	}
	if err := rec.Spec.validate(); err != nil {
		errs = append(errs, fmt.Errorf("spec: %w", err))
	}
	if !filepath.IsAbs(rec.Dir) || filepath.Clean(rec.Dir) != rec.Dir || !strings.HasPrefix(filepath.Base(rec.Dir), "testnet-"+prefix+"-") {
		errs = append(errs, fmt.Errorf("dir %q: not a temp dir of world %s", rec.Dir, prefix))
	}
	for _, ns := range rec.Namespaces {
		if !strings.HasPrefix(ns, prefix+"-") || !memberName.MatchString(strings.TrimPrefix(ns, prefix+"-")) {
			errs = append(errs, fmt.Errorf("namespace %q: not one of world %s", ns, prefix))
		}
	}
	for _, d := range rec.RunDirs {
		if filepath.Dir(d) != frrRunDir || !slices.Contains(rec.Namespaces, filepath.Base(d)) {
			errs = append(errs, fmt.Errorf("run dir %q: not one of world %s", d, prefix))
		}
	}
	if rec.NextID < 0 {
		errs = append(errs, fmt.Errorf("next id %d: negative", rec.NextID))
	}
	for _, p := range rec.Processes {
		if p.Name == "" || p.PID <= 1 || p.Started == 0 || len(p.Args) == 0 {
			errs = append(errs, fmt.Errorf("process %q (pid %d): want a name, a pid above 1, a start time and a command", p.Name, p.PID))
		}
		if filepath.Clean(p.Log) != p.Log || !strings.HasPrefix(p.Log, rec.Dir+"/") {
			errs = append(errs, fmt.Errorf("process %q: log %q is not in %s", p.Name, p.Log, rec.Dir))
		}
	}
	return errors.Join(errs...)
}

// world rebuilds the World a valid record describes.
func (rec record) world() (*World, error) {
	w := &World{spec: rec.Spec, dir: rec.Dir, namespaces: rec.Namespaces, runDirs: rec.RunDirs, nextID: rec.NextID}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	if rec.BootID == boot {
		for _, p := range rec.Processes {
			w.procs = append(w.procs, adoptProcess(p))
		}
	}
	w.lan = w.member("lan", netip.Addr{})
	for _, rs := range rec.Spec.Routers {
		r, err := newRouter(w.member(rs.Name, rs.Address), rs)
		if err != nil {
			return nil, fmt.Errorf("%w: router %s: %w", ErrBadRecord, rs.Name, err)
		}
		r.daemon.adopt(w.procs)
		w.routers = append(w.routers, r)
	}
	for _, ns := range rec.Spec.Nodes {
		w.nodes = append(w.nodes, &Node{Host: *w.member(ns.Name, ns.Address)})
	}
	if cs := rec.Spec.Client; cs != nil {
		w.client = &Client{Host: *w.member(cs.Name, cs.Address)}
	}
	for _, hs := range rec.Spec.Hosts {
		w.hosts = append(w.hosts, w.member(hs.Name, hs.Address))
	}
	return w, nil
}
