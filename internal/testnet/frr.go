package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"text/template"
	"time"
)

const (
	frrLibDir = "/usr/lib/frr"   // where Debian installs FRR's daemons
	frrRunDir = "/var/run/frr"   // -N NAME puts sockets and pid files in frrRunDir/NAME
	frrUser   = "frr"            // the daemons drop to this user
	vtyshPath = "/usr/bin/vtysh" // queries the daemons over their vty sockets
	frrZserv  = "zserv.api"      // zebra's socket; bgpd needs it
)

// frrDaemons are started in this order and stopped in reverse.
var frrDaemons = []string{"zebra", "bfdd", "bgpd"}

// frrDaemon runs one FRR instance in a router's namespace. -N separates
// its sockets and files from other instances; `ip netns exec` puts it in
// the namespace.
type frrDaemon struct {
	host    *Host
	runDir  string
	configs map[string]string // daemon → what prepare writes to confPath(daemon)

	mu    sync.Mutex
	procs []*Process // running daemons, in frrDaemons order
}

// newFRRRouter describes an FRR router; prepare writes its configs and
// makes its run directory, and start runs the daemons.
func newFRRRouter(h *Host, spec RouterSpec) (*frrDaemon, error) {
	bgpd, err := render(frrBGPTemplate, frrBGPData{RouterSpec: spec, Families: []string{"ipv4", "ipv6"}})
	if err != nil {
		return nil, err
	}
	bfd, err := newFRRBFD(h, spec)
	if err != nil {
		return nil, err
	}
	bfdd, err := render(frrBFDTemplate, bfd)
	if err != nil {
		return nil, err
	}
	configs := map[string]string{
		"zebra": "hostname " + spec.Name + "\n",
		"bfdd":  bfdd,
		"bgpd":  bgpd,
	}
	return &frrDaemon{host: h, runDir: filepath.Join(frrRunDir, h.ns), configs: configs}, nil
}

func (d *frrDaemon) prepare() error {
	if err := d.makeRunDir(); err != nil {
		return err
	}
	for name, config := range d.configs {
		if err := os.WriteFile(d.confPath(name), []byte(config), 0o644); err != nil {
			return fmt.Errorf("frr %s: %w", name, err)
		}
	}
	return nil
}

// adopt takes the latest of procs that ran each daemon, if all of them are
// there: a partly started FRR is taken as not running.
func (d *frrDaemon) adopt(procs []*Process) {
	var mine []*Process
	for _, name := range frrDaemons {
		p := latest(procs, d.host.name+"/"+name)
		if p == nil {
			return
		}
		mine = append(mine, p)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.procs = mine
}

// makeRunDir creates the run directory owned by user frr.
func (d *frrDaemon) makeRunDir() error {
	u, err := user.Lookup(frrUser)
	if err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	uid, uidErr := strconv.Atoi(u.Uid)
	gid, gidErr := strconv.Atoi(u.Gid)
	if err := errors.Join(uidErr, gidErr); err != nil {
		return fmt.Errorf("frr: user %s: %w", frrUser, err)
	}
	if err := os.MkdirAll(frrRunDir, 0o755); err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	if err := os.Mkdir(d.runDir, 0o755); err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	if err := d.host.world.recordRunDir(d.runDir); err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	if err := os.Chown(d.runDir, uid, gid); err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	return nil
}

func (d *frrDaemon) confPath(daemon string) string {
	return filepath.Join(d.host.dir, daemon+".conf")
}

func (d *frrDaemon) start(ctx context.Context) error {
	d.mu.Lock()
	running := len(d.procs) > 0
	d.mu.Unlock()
	if running {
		return errors.New("frr: already running")
	}
	for _, name := range frrDaemons {
		if err := d.startDaemon(ctx, name); err != nil {
			return err
		}
	}
	// Ready once bgpd answers over its vty socket.
	return WaitFor(ctx, startTimeout, func(ctx context.Context) error {
		if err := d.checkRunning(); err != nil {
			return err
		}
		_, err := d.vtysh(ctx, "show bgp summary json")
		return err
	})
}

// startDaemon starts one daemon; after zebra it waits for zebra's socket
// so bgpd finds it.
func (d *frrDaemon) startDaemon(ctx context.Context, name string) error {
	argv := []string{
		filepath.Join(frrLibDir, name),
		"-N", d.host.ns,
		"-f", d.confPath(name),
		"-i", filepath.Join(d.runDir, name+".pid"),
		"--log", "stdout",
	}
	p, err := d.host.world.start(d.host, name, name+".log", argv)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	if name != "zebra" {
		return nil
	}
	return WaitFor(ctx, startTimeout, func(context.Context) error {
		if err := d.checkRunning(); err != nil {
			return err
		}
		_, err := os.Stat(filepath.Join(d.runDir, frrZserv))
		return err
	})
}

// checkRunning fails with the log of a daemon that has exited.
func (d *frrDaemon) checkRunning() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.procs {
		if p.Exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail(20))
		}
	}
	return nil
}

func (d *frrDaemon) stop(grace time.Duration) error {
	d.mu.Lock()
	procs := d.procs
	d.procs = nil
	d.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].Stop(grace))
	}
	// The next start must wait for a fresh zebra socket.
	errs = append(errs, removeIfExists(filepath.Join(d.runDir, frrZserv)))
	return errors.Join(errs...)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (d *frrDaemon) logs() string {
	var out string
	for _, name := range frrDaemons {
		b, err := os.ReadFile(filepath.Join(d.host.dir, name+".log"))
		if err == nil {
			out += string(b)
		}
	}
	return out
}

// vtysh runs one vtysh command against this instance and returns stdout.
func (d *frrDaemon) vtysh(ctx context.Context, command string) (string, error) {
	return run(ctx, vtyshPath, "-N", d.host.ns, "-c", command)
}

func (d *frrDaemon) routes(ctx context.Context, prefix netip.Prefix) ([]RouteInfo, error) {
	family := "ipv4"
	if prefix.Addr().Is6() {
		family = "ipv6"
	}
	out, err := d.vtysh(ctx, fmt.Sprintf("show bgp %s unicast %s json", family, prefix))
	if err != nil {
		return nil, err
	}
	return parseFRRRoutes([]byte(out), prefix)
}

func (d *frrDaemon) sessions(ctx context.Context) ([]Session, error) {
	out, err := d.vtysh(ctx, "show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	return parseFRRNeighbors([]byte(out))
}

// frrBGPData is what frrBGPTemplate renders.
type frrBGPData struct {
	RouterSpec
	Families []string
}

// frrBGPTemplate is bgpd's config. No default IPv4 unicast: every
// neighbour is activated in both families explicitly, so IPv6 prefixes
// ride the IPv4 session. IPv6 routes use the global next hop in the FIB,
// not the link-local one a router on the LAN sends beside it (prefer-global).
var frrBGPTemplate = template.Must(template.New("frr bgpd").Funcs(template.FuncMap{"bfdProfile": frrBFDProfile}).Parse(`hostname {{.Name}}
router bgp {{.ASN}}
 bgp router-id {{.Address}}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
{{- range $i, $n := .Neighbors}}
 neighbor {{$n.Address}} remote-as {{$n.ASN}}
{{- if not $.DefaultTimers}}
 neighbor {{$n.Address}} timers connect 1
{{- end}}
 neighbor {{$n.Address}} advertisement-interval 0
{{- if $n.Password}}
 neighbor {{$n.Address}} password {{$n.Password}}
{{- end}}
{{- if $n.Multihop}}
 neighbor {{$n.Address}} ebgp-multihop 255
{{- end}}
{{- if $.PeerAddress.IsValid}}
 neighbor {{$n.Address}} update-source {{$.PeerAddress}}
{{- end}}
{{- if $n.BFD}}
 neighbor {{$n.Address}} bfd
 neighbor {{$n.Address}} bfd profile {{bfdProfile $i}}
{{- end}}
{{- end}}
{{- range $family := .Families}}
 address-family {{$family}} unicast
  maximum-paths 8
  maximum-paths ibgp 8
{{- range $n := $.Neighbors}}
  neighbor {{$n.Address}} activate
{{- if $n.RRClient}}
  neighbor {{$n.Address}} route-reflector-client
{{- end}}
{{- if $n.AddPaths}}
  neighbor {{$n.Address}} addpath-tx-all-paths
{{- end}}
{{- if $n.NextHopSelf}}
  neighbor {{$n.Address}} next-hop-self
{{- end}}
{{- if eq $family "ipv6"}}
  neighbor {{$n.Address}} route-map prefer-global in
{{- end}}
{{- end}}
 exit-address-family
{{- end}}
!
route-map prefer-global permit 10
 set ipv6 next-hop prefer-global
`))
