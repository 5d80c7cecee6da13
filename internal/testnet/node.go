package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

// Node is a namespace that runs vipd (or a stand-in announcer).
type Node struct {
	Host
}

// Client is a namespace that sends traffic to the VIPs through a router.
type Client struct {
	Host
}

// Socket is where the node's vipd should put its control socket.
func (n *Node) Socket() string { return filepath.Join(n.dir, "vipd.sock") }

// StateDir is the node's vipd state_dir.
func (n *Node) StateDir() string { return filepath.Join(n.dir, "state") }

// RuntimeYAML returns the top-level config keys that point vipd's
// state_dir and control socket into the world and turn metrics off, so
// nodes share nothing. Append it to a config that sets neither.
func (n *Node) RuntimeYAML() string {
	return fmt.Sprintf("state_dir: %s\napi:\n  socket: %s\nmetrics:\n  listen: \"\"\n", n.StateDir(), n.Socket())
}

// StartVipd writes configYAML to a new file in the node's directory and
// starts `BINARY run -c FILE` in the node's namespace. Its output goes to a
// log file (Process.Log); Close stops it if the test does not.
func (n *Node) StartVipd(ctx context.Context, binary, configYAML string) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := n.world.newFileID()
	conf := filepath.Join(n.dir, fmt.Sprintf("vipd-%d.yaml", id))
	if err := os.WriteFile(conf, []byte(configYAML), 0o600); err != nil {
		return nil, fmt.Errorf("%s: vipd config: %w", n.name, err)
	}
	return n.world.start(&n.Host, "vipd", fmt.Sprintf("vipd-%d.log", id), []string{binary, "run", "-c", conf})
}

// AnnouncerSpec configures a BIRD stand-in announcer on a node: it
// announces Prefixes to each peer with the given attributes, and imports
// nothing. IPv6 prefixes carry the node's LAN IPv6 address as next hop.
type AnnouncerSpec struct {
	ASN              uint32
	Peers            []Neighbor
	Prefixes         []netip.Prefix
	MED              uint32   // 0: none
	Communities      []string // "64532:100"
	LargeCommunities []string // "1:2:3"
}

var (
	communityRE      = regexp.MustCompile(`^\d+:\d+$`)
	largeCommunityRE = regexp.MustCompile(`^\d+:\d+:\d+$`)
)

func (a AnnouncerSpec) validate() error {
	var errs []error
	if a.ASN == 0 {
		errs = append(errs, errors.New("asn: must not be 0"))
	}
	for _, c := range a.Communities {
		if !communityRE.MatchString(c) {
			errs = append(errs, fmt.Errorf("community %q: want A:B", c))
		}
	}
	for _, c := range a.LargeCommunities {
		if !largeCommunityRE.MatchString(c) {
			errs = append(errs, fmt.Errorf("large community %q: want A:B:C", c))
		}
	}
	for _, p := range a.Peers {
		errs = append(errs, p.validate())
	}
	return errors.Join(errs...)
}

// StartAnnouncer runs BIRD in the node's namespace as a stand-in for vipd
// and waits until it answers queries. Stop the returned process to
// withdraw everything.
func (n *Node) StartAnnouncer(ctx context.Context, spec AnnouncerSpec) (*Process, error) {
	d, err := newAnnouncer(n, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: announcer: %w", n.name, err)
	}
	if err := d.start(ctx); err != nil {
		return nil, fmt.Errorf("%s: announcer: %w", n.name, err)
	}
	return d.process(), nil
}

// newAnnouncer writes the announcer's BIRD config; start runs it.
func newAnnouncer(n *Node, spec AnnouncerSpec) (*birdDaemon, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	data := announcerData{AnnouncerSpec: spec, RouterID: n.addr4}
	for _, c := range spec.Communities {
		data.BirdCommunities = append(data.BirdCommunities, strings.ReplaceAll(c, ":", ","))
	}
	for _, c := range spec.LargeCommunities {
		data.BirdLargeCommunities = append(data.BirdLargeCommunities, strings.ReplaceAll(c, ":", ","))
	}
	for i, peer := range spec.Peers {
		data.BGP = append(data.BGP, birdPeerData{
			Name: fmt.Sprintf("peer%d", i+1), LocalASN: spec.ASN, Neighbor: peer,
			IPv4: "import none; export filter announce; next hop self;",
			IPv6: fmt.Sprintf("import none; export filter announce; next hop address %s;", n.addr6),
		})
	}
	config, err := render(announcerTemplate, data)
	if err != nil {
		return nil, err
	}
	d := newBird(&n.Host, "announcer", config, nil)
	return d, d.prepare()
}

type announcerData struct {
	AnnouncerSpec
	RouterID             netip.Addr
	BirdCommunities      []string // "64532,100"
	BirdLargeCommunities []string
	BGP                  []birdPeerData
}

var announcerTemplate = template.Must(template.New("bird announcer").Parse(birdPeerTemplate + `
router id {{.RouterID}};
log stderr all;
protocol device { scan time 10; }
protocol static static4 {
	ipv4;
{{- range .Prefixes}}{{if .Addr.Is4}}
	route {{.}} blackhole;
{{- end}}{{end}}
}
protocol static static6 {
	ipv6;
{{- range .Prefixes}}{{if .Addr.Is6}}
	route {{.}} blackhole;
{{- end}}{{end}}
}
filter announce {
{{- if .MED}}
	bgp_med = {{.MED}};
{{- end}}
{{- range .BirdCommunities}}
	bgp_community.add(({{.}}));
{{- end}}
{{- range .BirdLargeCommunities}}
	bgp_large_community.add(({{.}}));
{{- end}}
	accept;
}
{{range .BGP}}{{template "peer" .}}{{end}}`))
