package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// requestTimeout bounds one demo request, and statusTimeout one node's
// status query.
const (
	requestTimeout = 2 * time.Second
	statusTimeout  = 2 * time.Second
)

// SpreadRequests is how many requests Spread sends to each VIP.
const SpreadRequests = 100

// Route returns the routes to the VIPs, as `ip route` shows them, of the
// router nearest the client and (multirack) of each ToR, each after the
// command that shows it.
func (l *Lab) Route(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, name := range l.topo.shown() {
		r := l.world.Router(name)
		for _, vip := range vips {
			family := "-4"
			if vip.Is6() {
				family = "-6"
			}
			out, err := r.Exec(ctx, "ip", family, "route", "show", vip.String())
			if err != nil {
				return "", err
			}
			if out == "" {
				out = "(no route)\n"
			}
			fmt.Fprintf(&b, "$ ip -n %s %s route show %s\n%s", r.Namespace(), family, vip, out)
		}
	}
	return b.String(), nil
}

// Spread is which node answered how many of the requests to one VIP.
type Spread struct {
	VIP       netip.Addr
	Answers   map[string]int // by node name
	Failed    int
	FirstFail error
}

// Spread sends count HTTP GETs from the client to each VIP, each on a new
// connection (so from a new source port, which the router hashes on), and
// counts which node answered.
func (l *Lab) Spread(ctx context.Context, count int) ([]Spread, error) {
	client := l.world.Client()
	httpc := &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
				return client.DialContext(ctx, network, address)
			},
			DisableKeepAlives: true,
		},
	}
	var out []Spread
	for _, vip := range vips {
		s := Spread{VIP: vip, Answers: map[string]int{}}
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip, servicePort))
		for range count {
			name, err := get(ctx, httpc, url)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				if s.Failed++; s.FirstFail == nil {
					s.FirstFail = err
				}
				continue
			}
			s.Answers[name]++
		}
		out = append(out, s)
	}
	return out, nil
}

// get fetches url and returns the answer's first line: the node's name.
func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// WriteSpread prints the spreads as a table, one column per VIP.
func WriteSpread(w io.Writer, spreads []Spread, count int) {
	fmt.Fprintf(w, "%d HTTP requests from %s to each VIP, each on a new connection:\n", count, clientName)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NODE")
	for _, s := range spreads {
		fmt.Fprintf(tw, "\t%s", s.VIP)
	}
	fmt.Fprintln(tw)
	names := append([]string(nil), nodeNames...)
	for _, s := range spreads {
		for name := range s.Answers {
			if !slices.Contains(names, name) {
				names = append(names, name) // an answer no node should give: show it
			}
		}
	}
	for _, name := range names {
		fmt.Fprint(tw, name)
		for _, s := range spreads {
			fmt.Fprintf(tw, "\t%d", s.Answers[name])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, s := range spreads {
		if s.Failed > 0 {
			fmt.Fprintf(w, "%d requests to %s failed, the first: %v\n", s.Failed, s.VIP, s.FirstFail)
		}
	}
}

// Status prints the lab: the router's routes, its BGP and BFD sessions,
// and each node's state as the lab and its vipd see it.
func (l *Lab) Status(ctx context.Context, w io.Writer) error {
	if l.topo.name == TopologyMultirack {
		fmt.Fprintf(w, "lab %s (multirack): core (AS %d); rack 1: tor1, rr1, n1 n2 (AS %d); rack 2: tor2, rr2, n3 (AS %d); %s; files and logs in %s\n\n",
			l.opts.Prefix, coreASN, rack1ASN, rack2ASN, clientName, l.world.Dir())
	} else {
		fmt.Fprintf(w, "lab %s: router %s (BIRD, AS %d), nodes %s (AS %d), %s; files and logs in %s\n\n",
			l.opts.Prefix, routerName, routerASN, strings.Join(nodeNames, " "), nodeASN, clientName, l.world.Dir())
	}
	route, err := l.Route(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, route)
	if err := l.writeSessions(ctx, w); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return l.writeNodes(ctx, w)
}

// writeSessions prints the peer router's side of each node's sessions.
func (l *Lab) writeSessions(ctx context.Context, w io.Writer) error {
	now := time.Now()
	fmt.Fprintln(w, "sessions at each node's peer router (birdc show protocols, show bfd sessions):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROUTER\tNEIGHBOR\tBGP\tSINCE\tBFD\tINFO")
	for _, n := range l.world.Nodes() {
		r := l.peerRouter(n)
		sessions, err := r.Sessions(ctx)
		if err != nil {
			return err
		}
		bfd, err := r.BFDSessions(ctx)
		if err != nil {
			return err
		}
		bgpState, since, info := "-", "-", ""
		for _, s := range sessions {
			if s.Neighbor == n.Addr4() {
				bgpState, info = s.State, s.Info
				if !s.Since.IsZero() {
					since = now.Sub(s.Since).Truncate(time.Second).String()
				}
			}
		}
		bfdState := "-"
		for _, s := range bfd {
			if s.Neighbor == n.Addr4() {
				bfdState = s.State
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name(), r.Name(), n.Addr4(), bgpState, since, bfdState, info)
	}
	return tw.Flush()
}

// writeNodes prints what the lab did to each node and what its vipd says.
func (l *Lab) writeNodes(ctx context.Context, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// WANTED is what the node's vipd offers to BGP; AT ROUTER is what the
	// node's edge router (the single router, or its rack's ToR) routes to
	// the node. They differ while a session is down: a
	// killed node still wants its VIPs announced.
	fmt.Fprintln(tw, "NODE\tLAB\tVIPD\tPEER\tBFD\tSERVICE\tWANTED\tAT ROUTER")
	for _, n := range l.world.Nodes() {
		lab, err := l.labState(ctx, n)
		if err != nil {
			return err
		}
		atRouter := 0
		for _, vip := range vips {
			has, err := l.hasNexthop(ctx, n, vip)
			if err != nil {
				return err
			}
			if has {
				atRouter++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d VIPs\n", n.Name(), lab, vipdState(ctx, l.world, n), atRouter, len(vips))
	}
	return tw.Flush()
}

// vipdState is the node's vipd as its status shows it: process, peer,
// BFD, service and the VIPs it wants announced, tab-separated.
func vipdState(ctx context.Context, w *testnet.World, n *testnet.Node) string {
	var proc *testnet.Process
	for _, p := range w.Processes() {
		if p.Name() == n.Name()+"/vipd" {
			proc = p
		}
	}
	if proc == nil || proc.Exited() {
		return "stopped\t-\t-\t-\t-"
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := api.NewClient(n.Socket()).Status(ctx)
	if err != nil {
		return fmt.Sprintf("pid %d, no status: %v\t-\t-\t-\t-", proc.PID(), err)
	}
	peer, bfd, service := "-", "-", "-"
	if len(st.Peers) > 0 {
		peer = st.Peers[0].State
	}
	if len(st.BFD) > 0 {
		bfd = st.BFD[0].State
	}
	if len(st.Services) > 0 {
		service = st.Services[0].State
	}
	announced := 0
	for _, v := range st.VIPs {
		if v.Announced {
			announced++
		}
	}
	return fmt.Sprintf("pid %d\t%s\t%s\t%s\t%d/%d VIPs", proc.PID(), peer, bfd, service, announced, len(st.VIPs))
}
