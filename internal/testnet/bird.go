package testnet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"
)

// startTimeout bounds how long a daemon may take to answer after start.
const startTimeout = 20 * time.Second

// birdDaemon runs one BIRD in a member's namespace: a router, or a node's
// stand-in announcer.
type birdDaemon struct {
	host    *Host
	program string // process and file name stem: "bird" or "announcer"
	config  string // what prepare writes to conf
	conf    string
	sock    string
	peers   map[string]netip.Addr // BGP protocol name → neighbour

	mu   sync.Mutex
	proc *Process
}

// newBird describes a BIRD with config in the host's directory; prepare
// writes the config.
func newBird(h *Host, program, config string, peers map[string]netip.Addr) *birdDaemon {
	return &birdDaemon{
		host:    h,
		program: program,
		config:  config,
		conf:    filepath.Join(h.dir, program+".conf"),
		sock:    filepath.Join(h.dir, program+".sock"),
		peers:   peers,
	}
}

func (d *birdDaemon) prepare() error {
	if err := os.WriteFile(d.conf, []byte(d.config), 0o644); err != nil {
		return fmt.Errorf("%s: %w", d.program, err)
	}
	return nil
}

// adopt takes the latest of procs that ran this BIRD.
func (d *birdDaemon) adopt(procs []*Process) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.proc = latest(procs, d.host.name+"/"+d.program)
}

// latest returns the last of procs called name, or nil.
func latest(procs []*Process, name string) *Process {
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i].name == name {
			return procs[i]
		}
	}
	return nil
}

// newBirdRouter describes a BIRD router; prepare writes its config and
// start runs it.
func newBirdRouter(h *Host, spec RouterSpec) (*birdDaemon, error) {
	peers := map[string]netip.Addr{}
	bfd, err := newBirdBFD(h, spec)
	if err != nil {
		return nil, err
	}
	data := birdRouterData{RouterID: spec.Address, Interface: LANInterface, BFD: bfd, ExportHosts: spec.ExportHosts}
	export := "export none;"
	if spec.ExportHosts > 0 {
		if spec.ExportHosts > 1<<22 {
			return nil, fmt.Errorf("export hosts %d: 100.64.0.0/10 holds %d", spec.ExportHosts, 1<<22)
		}
		export = "export where source = RTS_STATIC;"
	}
	for i, n := range spec.Neighbors {
		p := birdPeerData{
			Name: fmt.Sprintf("peer%d", i+1), Source: spec.PeerAddress, LocalASN: spec.ASN, Neighbor: n,
			DefaultTimers: spec.DefaultTimers,
			// Next hops resolve through the LAN's direct routes, for
			// multihop and IPv6-over-IPv4 alike.
			// Routers honour GRACEFUL_SHUTDOWN (RFC 8326) as the README asks.
			IPv4: "import filter honour_graceful_shutdown; " + export + " gateway recursive;",
			// The global next hop, not the link-local one a router on the
			// LAN sends beside it, as the FIB assertions expect.
			IPv6: "import filter honour_graceful_shutdown; export none; gateway recursive; next hop prefer global;",
		}
		if n.Export || n.AddPaths || n.NextHopSelf {
			p.IPv4, p.IPv6 = birdFabricChannels(n, h.addr6)
		}
		if n.BFD != nil && n.Multihop && !p.Source.IsValid() {
			p.Source = bfdLocal(h, spec, n.Address) // BIRD insists on one
		}
		peers[p.Name] = n.Address
		data.Peers = append(data.Peers, p)
	}
	config, err := render(birdRouterTemplate, data)
	if err != nil {
		return nil, err
	}
	return newBird(h, "bird", config, peers), nil
}

// birdFabricChannels are the channel bodies of a router-to-router
// session: BGP routes exported, every path if asked, next hop self if asked.
func birdFabricChannels(n Neighbor, addr6 netip.Addr) (ipv4, ipv6 string) {
	export := "export none;"
	if n.Export {
		export = "export where source = RTS_BGP;"
	}
	common := "import filter honour_graceful_shutdown; " + export + " gateway recursive;"
	if n.AddPaths {
		common += " add paths on;"
	}
	ipv4, ipv6 = common, common+" next hop prefer global;"
	if n.NextHopSelf {
		ipv4 += " next hop self;"
		ipv6 += fmt.Sprintf(" next hop self; next hop address %s;", addr6)
	}
	return ipv4, ipv6
}

func (d *birdDaemon) start(ctx context.Context) error {
	p, err := d.launch()
	if err != nil {
		return err
	}
	return WaitFor(ctx, startTimeout, func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.tail(20))
		}
		_, err := d.birdc(ctx, "show", "status")
		return err
	})
}

func (d *birdDaemon) launch() (*Process, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil && !d.proc.Exited() {
		return nil, fmt.Errorf("%s: already running (pid %d)", d.program, d.proc.PID())
	}
	p, err := d.host.world.start(d.host, d.program, d.program+".log", []string{"bird", "-f", "-c", d.conf, "-s", d.sock})
	if err != nil {
		return nil, err
	}
	d.proc = p
	return p, nil
}

func (d *birdDaemon) stop(grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return nil
	}
	return d.proc.Stop(grace)
}

func (d *birdDaemon) process() *Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

func (d *birdDaemon) logs() string {
	if p := d.process(); p != nil {
		return p.Log()
	}
	return ""
}

// birdc runs a birdc command against this BIRD and returns its output.
func (d *birdDaemon) birdc(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "birdc", append([]string{"-s", d.sock}, args...)...)
}

func (d *birdDaemon) routes(ctx context.Context, prefix netip.Prefix) ([]RouteInfo, error) {
	out, err := d.birdc(ctx, "show", "route", "all", prefix.String())
	if err != nil && !strings.Contains(out, birdNotFound) { // birdc exits 1 then
		return nil, err
	}
	return parseBirdRoutes(out, prefix, d.peers)
}

func (d *birdDaemon) sessions(ctx context.Context) ([]Session, error) {
	out, err := d.birdc(ctx, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBirdProtocols(out, d.peers)
}

func render(t *template.Template, data any) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s: %w", t.Name(), err)
	}
	return b.String(), nil
}

type birdRouterData struct {
	RouterID  netip.Addr
	Interface string
	Peers     []birdPeerData
	BFD       *birdBFDData // nil: no protocol bfd
	// ExportHosts is how many /32s of 100.64.0.0/10 protocol static
	// originates for the peers.
	ExportHosts int
}

// birdPeerData is one `protocol bgp`; IPv4 and IPv6 are channel bodies.
type birdPeerData struct {
	Name     string
	Source   netip.Addr // zero: chosen by the kernel
	LocalASN uint32
	Neighbor Neighbor
	IPv4     string
	IPv6     string
	// DefaultTimers leaves BIRD's connect and error-wait timers alone.
	DefaultTimers bool
}

// birdPeerTemplate keeps timers short so a restarted peer reconnects at
// once instead of after BIRD's 60-300 s defaults.
const birdPeerTemplate = `{{define "peer"}}
protocol bgp {{.Name}} {
	local {{if .Source.IsValid}}{{.Source}} {{end}}as {{.LocalASN}};
	neighbor {{.Neighbor.Address}} as {{.Neighbor.ASN}};
{{- if .Neighbor.Multihop}}
	multihop;
{{- else if eq .Neighbor.ASN .LocalASN}}
	direct;
{{- end}}
{{- if .Neighbor.RRClient}}
	rr client;
{{- end}}
{{- with .Neighbor.Password}}
	password "{{.}}";
{{- end}}
{{- with .Neighbor.BFD}}
	bfd {{if .Graceful}}graceful{{else}}on{{end}};
{{- end}}
{{- if not .DefaultTimers}}
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 5;
{{- end}}
	ipv4 { {{.IPv4}} };
	ipv6 { {{.IPv6}} };
}
{{end}}`

var birdRouterTemplate = template.Must(template.New("bird router").Funcs(templateFuncs).Parse(birdPeerTemplate + birdBFDTemplate + `
router id {{.RouterID}};
log stderr all;
timeformat protocol iso long;
timeformat route iso long;
protocol device { scan time 10; }
filter honour_graceful_shutdown {
	if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
	accept;
}
protocol direct { ipv4; ipv6; interface "{{.Interface}}"; }
# ECMP: equal BGP paths become one multipath kernel route.
protocol kernel kernel4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }
{{with .BFD}}{{template "bfd" .}}{{end}}
{{- if .ExportHosts}}
protocol static leaked { ipv4;
{{- range hosts .ExportHosts}}
	route {{.}}/32 blackhole;
{{- end}}
}
{{- end}}
{{- range .Peers}}{{template "peer" .}}{{end}}`))
