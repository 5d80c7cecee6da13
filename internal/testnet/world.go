package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long Close lets processes exit after SIGTERM.
const stopGrace = 5 * time.Second

// World is a built network-namespace world. Close removes it.
type World struct {
	spec    Spec // defaulted
	dir     string
	lan     *Host // the bridge's namespace
	routers []*Router
	nodes   []*Node
	client  *Client
	hosts   []*Host

	mu         sync.Mutex
	namespaces []string   // created, in order
	runDirs    []string   // FRR run directories created
	procs      []*Process // every process started
	nextID     int        // numbers vipd configs and logs

	closeOnce sync.Once
	closeErr  error
}

// New builds the world spec describes and starts its routers. ctx bounds
// the setup only. On error everything made so far is removed again.
func New(ctx context.Context, spec Spec) (*World, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("testnet: spec: %w", err)
	}
	dir, err := os.MkdirTemp("", "testnet-"+spec.Prefix+"-")
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	w := &World{spec: spec, dir: dir}
	if err := w.persist(); err != nil {
		return nil, errors.Join(fmt.Errorf("testnet %s: %w", spec.Prefix, err), os.RemoveAll(dir))
	}
	if err := w.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("testnet %s: %w", spec.Prefix, err), w.Close())
	}
	return w, nil
}

func (w *World) build(ctx context.Context) error {
	// FRR's daemons read their configs as user frr.
	if err := os.Chmod(w.dir, 0o755); err != nil {
		return err
	}
	if err := w.buildLAN(ctx); err != nil {
		return err
	}
	for _, rs := range w.spec.Routers {
		r, err := w.addRouter(ctx, rs)
		if err != nil {
			return fmt.Errorf("router %s: %w", rs.Name, err)
		}
		w.routers = append(w.routers, r)
	}
	for _, ns := range w.spec.Nodes {
		h, err := w.addHost(ctx, ns)
		if err != nil {
			return fmt.Errorf("node %s: %w", ns.Name, err)
		}
		w.nodes = append(w.nodes, &Node{Host: *h})
	}
	if cs := w.spec.Client; cs != nil {
		h, err := w.addHost(ctx, *cs)
		if err != nil {
			return fmt.Errorf("client %s: %w", cs.Name, err)
		}
		w.client = &Client{Host: *h}
	}
	for _, hs := range w.spec.Hosts {
		h, err := w.addHost(ctx, hs)
		if err != nil {
			return fmt.Errorf("host %s: %w", hs.Name, err)
		}
		w.hosts = append(w.hosts, h)
	}
	for _, r := range w.routers {
		if err := r.Start(ctx); err != nil {
			return fmt.Errorf("router %s: %w", r.name, err)
		}
	}
	return nil
}

// Close stops every process the world started (SIGTERM, then SIGKILL
// after a grace period), deletes its namespaces and FRR run directories
// and removes its temp dir, then its record if it keeps one. It is
// idempotent and copes with a world that was only partly built, or whose
// namespaces are already gone (a loaded record after a reboot).
func (w *World) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.teardown() })
	return w.closeErr
}

func (w *World) teardown() error {
	w.mu.Lock()
	procs, namespaces, runDirs := w.procs, w.namespaces, w.runDirs
	w.mu.Unlock()

	var errs []error
	// Signal all first so they shut down in parallel.
	for _, p := range procs {
		_ = p.Signal(syscall.SIGTERM) // fails only for ended processes
	}
	deadline := time.Now().Add(stopGrace)
	for _, p := range procs {
		if err := p.Stop(time.Until(deadline)); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := len(namespaces) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(netnsDir, namespaces[i])); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if _, err := run(ctx, "ip", "netns", "delete", namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range runDirs {
		errs = append(errs, os.RemoveAll(d))
	}
	errs = append(errs, os.RemoveAll(w.dir))
	// A record kept after a failure lets a later Load try again.
	if err := errors.Join(errs...); err != nil || w.spec.Record == "" {
		return err
	}
	return removeIfExists(w.spec.Record)
}

// Prefix is the world's unique name prefix.
func (w *World) Prefix() string { return w.spec.Prefix }

// Spec is the world's spec with defaults filled in.
func (w *World) Spec() Spec { return w.spec }

// Dir is the world's temp dir; each member has a subdirectory named after it.
func (w *World) Dir() string { return w.dir }

// Routers returns the routers in spec order.
func (w *World) Routers() []*Router { return w.routers }

// Nodes returns the nodes in spec order.
func (w *World) Nodes() []*Node { return w.nodes }

// Client returns the client, or nil if the spec has none.
func (w *World) Client() *Client { return w.client }

// Hosts returns the plain hosts in spec order.
func (w *World) Hosts() []*Host { return w.hosts }

// Router returns the router called name, or nil.
func (w *World) Router(name string) *Router {
	for _, r := range w.routers {
		if r.name == name {
			return r
		}
	}
	return nil
}

// Node returns the node called name, or nil.
func (w *World) Node(name string) *Node {
	for _, n := range w.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// Host returns the member called name ("lan" is the bridge's namespace),
// or nil.
func (w *World) Host(name string) *Host {
	switch {
	case name == "lan":
		return w.lan
	case w.Router(name) != nil:
		return &w.Router(name).Host
	case w.Node(name) != nil:
		return &w.Node(name).Host
	case w.client != nil && w.client.name == name:
		return &w.client.Host
	}
	for _, h := range w.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Exec runs a short command inside the namespace of the member called
// name and returns its stdout.
func (w *World) Exec(ctx context.Context, name, command string, args ...string) (string, error) {
	h := w.Host(name)
	if h == nil {
		return "", fmt.Errorf("testnet %s: no member %q", w.spec.Prefix, name)
	}
	return h.Exec(ctx, command, args...)
}

// Processes returns every process the world has started, ended or not.
func (w *World) Processes() []*Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Process(nil), w.procs...)
}

// LogTails returns the last lines of every process's log, for failure
// reports. A restarted daemon appends to its old log, which shows once.
func (w *World) LogTails(lines int) string {
	procs := w.Processes()
	latest := map[string]*Process{} // by log path
	for _, p := range procs {
		latest[p.logPath] = p
	}
	var b strings.Builder
	for _, p := range procs {
		if latest[p.logPath] == p {
			fmt.Fprintf(&b, "==== %s (pid %d) ====\n%s\n", p.name, p.PID(), p.tail(lines))
		}
	}
	return b.String()
}

// start starts argv in h's namespace, appending its output to logName in
// h's directory, and records the process so Close ends it.
func (w *World) start(h *Host, program, logName string, argv []string) (*Process, error) {
	p, err := startProcess(h.name+"/"+program, h.ns, filepath.Join(h.dir, logName), argv)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.procs = append(w.procs, p)
	if err := w.persistLocked(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return p, nil
}

// newFileID numbers a per-process file such as a vipd config.
func (w *World) newFileID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextID++
	return w.nextID
}

// recordNamespace and recordRunDir note what Close must remove, once made:
// Close never removes what the world did not make.
func (w *World) recordNamespace(ns string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.namespaces = append(w.namespaces, ns)
	return w.persistLocked()
}

func (w *World) recordRunDir(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runDirs = append(w.runDirs, dir)
	return w.persistLocked()
}
