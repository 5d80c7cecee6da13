package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show peers, services and announcements of the running daemon",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(w io.Writer, st api.Status, now time.Time) {
	fmt.Fprintf(w, "vipd %s  router-id %s  AS %d\n\n", st.Version, st.RouterID, st.ASN)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tADDRESS\tAS\tSTATE\tSINCE\tINFO")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.Address, p.ASN, p.State, since(p.Since, now),
			joinNonEmpty(p.LastError, prefixed("ipv6: ", p.IPv6Problem), openedByRouter(p.Connection)))
	}
	tw.Flush()
	fmt.Fprintln(w)

	if k := st.Kubernetes; k != nil {
		conn := "connected"
		if !k.Connected {
			conn = "API server unreachable (serving the last state known)"
			if k.LastError != "" {
				conn += ": " + k.LastError
			}
		}
		if !k.Synced {
			conn += ", waiting for the first list"
			if k.LocalCopy {
				conn += " (serving the copy saved before the restart)"
			}
		}
		fmt.Fprintf(w, "kubernetes: node %s, %s (%s), %d services, allocator %s\n\n",
			k.Node, conn, since(k.Since, now), k.Services, dash(k.Allocator))
	}
	if c := st.Cluster; c != nil {
		printCluster(w, *c, now)
	}

	if len(st.BFD) > 0 {
		fmt.Fprintln(tw, "BFD PEER\tREMOTE\tMODE\tSTATE\tSINCE\tDISCR (LOCAL/REMOTE)\tTX/RX\tDETECT\tLAST DIAG\tINFO")
		for _, b := range st.BFD {
			mode := "single-hop"
			if b.Multihop {
				mode = "multihop"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%v/%v\t%v\t%s\t%s\n", b.Peer, b.Remote, mode, b.State,
				since(b.Since, now), b.LocalDiscriminator, b.RemoteDiscriminator, b.TxInterval, b.RxInterval,
				b.DetectionTime, b.LastDiag, dash(b.Problem))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}

	fmt.Fprintln(tw, "SERVICE\tSTATE\tSINCE\tLAST CHECK\tWHY")
	for _, s := range st.Services {
		last := s.LastResult
		if s.LastError != "" {
			last += ": " + s.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, since(s.Since, now), dash(last), s.Reason)
	}
	tw.Flush()
	fmt.Fprintln(w)

	fmt.Fprintln(tw, "VIP\tSERVICE\tBOUND\tANNOUNCED\tMED\tPEERS\tWHY")
	for _, v := range st.VIPs {
		bound := "no"
		if v.Bound {
			bound = v.Interface
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Prefix, v.Service, bound, yesNo(v.Announced), v.MED,
			dash(strings.Join(v.Peers, ",")), v.Reason)
	}
	tw.Flush()

	if len(st.LoadBalancers) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "LOAD BALANCER\tADDRESS\tPROTOCOL\tMODE\tBACKENDS UP\tANNOUNCED\tWHY")
		for _, l := range st.LoadBalancers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, hostPort(l.EIP, l.Port),
				l.Protocol, l.Mode, backendsUp(l.Backends), yesNo(l.Announced), l.Reason)
		}
		tw.Flush()
	}
	printXDP(w, tw, st.XDP)
}

// printXDP shows where the XDP program runs and where dsr backends' frames
// go, and why not.
func printXDP(w io.Writer, tw *tabwriter.Writer, x *api.XDPStatus) {
	if x == nil {
		return
	}
	fmt.Fprintln(w)
	if x.Error != "" {
		fmt.Fprintf(w, "XDP: not working, dsr load balancers withdrawn: %s\n", x.Error)
	}
	fmt.Fprintln(tw, "XDP INTERFACE\tMODE\tERROR")
	for _, i := range x.Interfaces {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, dash(i.Mode), dash(i.Error))
	}
	tw.Flush()
	if len(x.Backends) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "DSR BACKEND\tLOAD BALANCER\tMAC\tINTERFACE\tPROBLEM")
	for _, b := range x.Backends {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Backend, b.LoadBalancer, dash(b.MAC), dash(b.Interface), dash(b.Problem))
	}
	tw.Flush()
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// openedByRouter notes a session the router opened (to listen_port): the
// usual case is that vipd opens it.
func openedByRouter(c *api.PeerConnection) string {
	if c == nil || c.OpenedBy != "router" {
		return ""
	}
	return "opened by the router, to " + c.Local
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return dash(strings.Join(out, "; "))
}
