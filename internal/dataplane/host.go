package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ProcSys is where the kernel's parameters live.
const ProcSys = "/proc/sys"

// Setting is one kernel parameter the data plane needs, for status.
type Setting struct {
	Name string // as sysctl(8) names it: "net.ipv6.conf.eth0.accept_ra"
	Was  string // the value vipd found
	Want string // the value vipd set (nothing was written if it equals Was)
}

// ApplyHostSettings sets the kernel parameters the data plane needs (see
// the package comment) under procSys, normally ProcSys, in the network
// namespace of the calling thread, and returns them, changed or not. It
// needs nothing unless forwarding (a load balancer in nat mode) is
// wanted. Without IPv6 it sets only the IPv4 parameters.
func ApplyHostSettings(procSys string, forwarding bool) ([]Setting, error) {
	if !forwarding {
		return nil, nil
	}
	h := hostSettings{root: procSys}
	v6 := h.exists("net/ipv6/conf")
	if v6 {
		// Before forwarding, so router advertisements never stop.
		h.eachInterface("net/ipv6/conf", "accept_ra", "1", "2")
	}
	h.set("net/ipv4/ip_forward", "1")
	if v6 {
		h.set("net/ipv6/conf/all/forwarding", "1")
	}
	h.eachInterface("net/ipv4/conf", "rp_filter", "1", "2")
	return h.done, errors.Join(h.errs...)
}

// hostSettings applies settings under root and records what it did.
type hostSettings struct {
	root string
	done []Setting
	errs []error
}

func (h *hostSettings) exists(path string) bool {
	_, err := os.Stat(filepath.Join(h.root, path))
	return err == nil
}

// eachInterface sets param to want in every directory under dir (all,
// default and one per interface) where it is from.
func (h *hostSettings) eachInterface(dir, param, from, want string) {
	entries, err := os.ReadDir(filepath.Join(h.root, dir))
	if err != nil {
		h.errs = append(h.errs, fmt.Errorf("dataplane: sysctl %s: %w", sysctlName(dir), err))
		return
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name(), param)
		if was, err := h.read(path); err == nil && was == from {
			h.set(path, want)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.errs = append(h.errs, err)
		}
	}
}

// set writes want to path unless it holds it already.
func (h *hostSettings) set(path, want string) {
	was, err := h.read(path)
	if err != nil {
		h.errs = append(h.errs, err)
		return
	}
	if was != want {
		if err := os.WriteFile(filepath.Join(h.root, path), []byte(want), 0o644); err != nil {
			h.errs = append(h.errs, fmt.Errorf("dataplane: sysctl %s=%s: %w", sysctlName(path), want, err))
			return
		}
	}
	h.done = append(h.done, Setting{Name: sysctlName(path), Was: was, Want: want})
}

func (h *hostSettings) read(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.root, path))
	if err != nil {
		return "", fmt.Errorf("dataplane: sysctl %s: %w", sysctlName(path), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// sysctlName turns a path under /proc/sys into sysctl(8)'s name for it,
// where a dot inside a component (an interface "eth0.100") becomes "/".
func sysctlName(path string) string {
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, ".", "/")
	}
	return strings.Join(parts, ".")
}
