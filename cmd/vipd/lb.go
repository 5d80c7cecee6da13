package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
)

// lbFlags are the flags every `vipd lb` command shares.
type lbFlags struct {
	*globalFlags
	json bool
}

func newLBCmd(g *globalFlags) *cobra.Command {
	f := &lbFlags{globalFlags: g}
	cmd := &cobra.Command{
		Use:   "lb",
		Short: "manage load balancers over the API (create, list, show, delete, backend add/remove)",
		Long: `vipd lb manages the daemon's load balancers through its API: on the control
socket, or with --api and --token-file on its TCP listener. LB is a load
balancer's UUID or name; BACKEND is a backend's UUID or IP:PORT.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("want a subcommand\n%s", cmd.UsageString())}
			}
			return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], cmd.UsageString())}
		},
	}
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print the API's JSON reply")
	backend := &cobra.Command{
		Use:   "backend",
		Short: "add or remove a load balancer's backends",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmd.RunE,
	}
	backend.AddCommand(newLBBackendAddCmd(f), newLBBackendRemoveCmd(f))
	cmd.AddCommand(newLBCreateCmd(f), newLBListCmd(f), newLBShowCmd(f), newLBDeleteCmd(f), backend)
	return cmd
}

// checkFlags are create's --check-* flags.
type checkFlags struct {
	check                           api.Check
	interval, fastInterval, timeout time.Duration
}

// request returns the check the flags ask for; nil without --check.
func (c *checkFlags) request(cmd *cobra.Command) (*api.Check, error) {
	if c.check.Type == "" {
		for _, name := range []string{"check-path", "check-status", "check-interval", "check-fast-interval", "check-timeout", "check-rise", "check-fall"} {
			if cmd.Flags().Changed(name) {
				return nil, usageError{fmt.Errorf("--%s needs --check", name)}
			}
		}
		return nil, nil
	}
	check := c.check
	if c.interval != 0 {
		check.Interval = c.interval.String()
	}
	if c.fastInterval != 0 {
		check.FastInterval = c.fastInterval.String()
	}
	if c.timeout != 0 {
		check.Timeout = c.timeout.String()
	}
	return &check, nil
}

func newLBCreateCmd(f *lbFlags) *cobra.Command {
	var (
		req        api.LoadBalancerRequest
		ports      []uint
		masquerade bool
		localPref  uint32
		check      checkFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME --port N",
		Short: "create a load balancer, taking an address from a pool (again with the same spec: no change)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if !cmd.Flags().Changed("port") {
				return usageError{errors.New("create needs --port")}
			}
			if cmd.Flags().Changed("masquerade") {
				req.Masquerade = &masquerade
			}
			if cmd.Flags().Changed("local-pref") {
				req.LocalPref = &localPref
			}
			for _, p := range ports {
				if p > 65535 {
					return usageError{fmt.Errorf("--ports: %d is not a port", p)}
				}
				req.Ports = append(req.Ports, uint16(p))
			}
			var err error
			if req.Check, err = check.request(cmd); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			l, created, err := c.CreateLoadBalancer(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), l)
			}
			verb := "created"
			if !created {
				verb = "exists already, unchanged:"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "load balancer %s %s\n\n", l.Name, verb)
			printLB(cmd.OutOrStdout(), l)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Uint16Var(&req.Port, "port", 0, "the port clients connect to (required)")
	fl.StringVar(&req.Protocol, "protocol", "", "tcp (default) or udp")
	fl.StringVar(&req.Mode, "mode", "", "nat (default): DNAT to backends; local: DNAT to a port on this host; dsr: XDP direct server return to backends on the LAN")
	fl.StringVar(&req.Pool, "pool", "", "the pool to take the address from (default: the only one)")
	fl.StringVar(&req.Address, "address", "", "the address to take (default: the pool's first free one)")
	fl.UintSliceVar(&ports, "ports", nil, "the only other ports on which the address takes traffic, e.g. 80,443")
	fl.BoolVar(&masquerade, "masquerade", true, "nat mode: source-NAT to this host, so backends need no route back")
	fl.StringVar(&req.OnEmpty, "on-empty", "", "while no backend is up: withdraw (default) or announce")
	fl.Uint32Var(&localPref, "local-pref", 100, "LOCAL_PREF of the address towards iBGP peers")
	fl.StringSliceVar(&req.Nodes, "nodes", nil, "in a cluster, the nodes that serve it: node names and labels as key=value (default: every node)")
	fl.StringVar(&check.check.Type, "check", "", "backend health check: tcp or http (default: none)")
	fl.StringVar(&check.check.Path, "check-path", "", `http check path (default "/")`)
	fl.StringVar(&check.check.ExpectStatus, "check-status", "", `http check status: "204" or "200-299" (default)`)
	fl.DurationVar(&check.interval, "check-interval", 0, "time between checks (default 1s)")
	fl.DurationVar(&check.fastInterval, "check-fast-interval", 0, "time between checks while a backend's state is unknown or changing (default: the smaller of 1s and the interval)")
	fl.DurationVar(&check.timeout, "check-timeout", 0, "check timeout (default: the smaller of 1s and the fast interval)")
	fl.IntVar(&check.check.Rise, "check-rise", 0, "passes in a row to go up (default 2)")
	fl.IntVar(&check.check.Fall, "check-fall", 0, "failures in a row to go down (default 2)")
	return cmd
}

func newLBListCmd(f *lbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list load balancers",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			list, err := c.LoadBalancers(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUUID\tADDRESS\tPROTOCOL\tMODE\tBACKENDS UP\tANNOUNCED\tWHY")
			for _, l := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, l.UUID, hostPort(l.EIP, l.Port), l.Protocol,
					l.Mode, backendsUp(l.Backends), yesNo(l.Announced), dash(l.Reason))
			}
			return tw.Flush()
		},
	}
}

func newLBShowCmd(f *lbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show LB",
		Short: "show a load balancer and its backends",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, l, err := f.findLB(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), l)
			}
			printLB(cmd.OutOrStdout(), l)
			return nil
		},
	}
}

func newLBDeleteCmd(f *lbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete LB",
		Short: "delete a load balancer: withdraw and release its address, remove its data plane",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, l, err := f.findLB(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteLoadBalancer(cmd.Context(), l.UUID); err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), api.Deleted{UUID: l.UUID, Deleted: true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "load balancer %s (%s) deleted; %s released\n", l.Name, l.UUID, l.EIP)
			return nil
		},
	}
}

func newLBBackendAddCmd(f *lbFlags) *cobra.Command {
	var weight uint32
	cmd := &cobra.Command{
		Use:   "add LB IP:PORT",
		Short: "add a backend (local mode: :PORT)",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ip, port, err := parseBackend(args[1])
			if err != nil {
				return usageError{err}
			}
			c, l, err := f.findLB(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			req := api.BackendRequest{Port: port, Weight: weight}
			if ip.IsValid() {
				req.IP = ip.String()
			}
			if l, err = c.AddBackend(cmd.Context(), l.UUID, req); err != nil {
				return err
			}
			return printLBReply(cmd.OutOrStdout(), f, l)
		},
	}
	cmd.Flags().Uint32Var(&weight, "weight", 0, "the backend's share of flows relative to the others (default 1)")
	return cmd
}

func newLBBackendRemoveCmd(f *lbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove LB BACKEND",
		Short: "remove a backend, named by its UUID or IP:PORT",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, l, err := f.findLB(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			b, err := findBackend(l, args[1])
			if err != nil {
				return err
			}
			if l, err = c.RemoveBackend(cmd.Context(), l.UUID, b.UUID); err != nil {
				return err
			}
			return printLBReply(cmd.OutOrStdout(), f, l)
		},
	}
}

// findLB returns the load balancer whose UUID, or else name, is arg.
// findLB connects and looks up the load balancer arg names.
func (f *lbFlags) findLB(ctx context.Context, arg string) (*api.Client, api.LoadBalancer, error) {
	c, err := f.client()
	if err != nil {
		return nil, api.LoadBalancer{}, err
	}
	l, err := findLB(ctx, c, arg)
	return c, l, err
}

func findLB(ctx context.Context, c *api.Client, arg string) (api.LoadBalancer, error) {
	list, err := c.LoadBalancers(ctx)
	if err != nil {
		return api.LoadBalancer{}, err
	}
	for _, l := range list {
		if l.UUID == arg {
			return l, nil
		}
	}
	for _, l := range list {
		if l.Name == arg {
			return l, nil
		}
	}
	return api.LoadBalancer{}, fmt.Errorf("no load balancer has the UUID or name %q", arg)
}

// findBackend returns l's backend whose UUID or IP:PORT is arg. ":PORT"
// names a local-mode backend by its port.
func findBackend(l api.LoadBalancer, arg string) (api.LoadBalancerBackend, error) {
	for _, b := range l.Backends {
		if b.UUID == arg {
			return b, nil
		}
	}
	if ip, port, err := parseBackend(arg); err == nil {
		for _, b := range l.Backends {
			bip, _ := netip.ParseAddr(b.IP)
			if b.Port == port && (bip == ip || !ip.IsValid() && b.IP == l.EIP) {
				return b, nil
			}
		}
	}
	return api.LoadBalancerBackend{}, fmt.Errorf("load balancer %s has no backend with the UUID or address %q", l.Name, arg)
}

// parseBackend reads "IP:PORT", "[IPv6]:PORT" or, for local mode, ":PORT"
// (ip is then the zero Addr).
func parseBackend(s string) (netip.Addr, uint16, error) {
	if p, ok := strings.CutPrefix(s, ":"); ok {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("backend %q: want IP:PORT or :PORT", s)
		}
		return netip.Addr{}, uint16(port), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("backend %q: want IP:PORT ([IPv6]:PORT) or :PORT", s)
	}
	return ap.Addr(), ap.Port(), nil
}

// printLBReply prints a changed load balancer as JSON or as text.
func printLBReply(w io.Writer, f *lbFlags, l api.LoadBalancer) error {
	if f.json {
		return printJSON(w, l)
	}
	printLB(w, l)
	return nil
}

// printLB prints one load balancer: its settings, then its backends.
func printLB(w io.Writer, l api.LoadBalancer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := l.Mode
	if l.Masquerade {
		mode += ", masquerade"
	}
	fmt.Fprintf(tw, "name:\t%s\nuuid:\t%s\naddress:\t%s/%s (pool %s)\nmode:\t%s\n",
		l.Name, l.UUID, hostPort(l.EIP, l.Port), l.Protocol, dash(l.Pool), mode)
	if len(l.Ports) > 0 {
		ports := make([]string, len(l.Ports))
		for i, p := range l.Ports {
			ports[i] = strconv.Itoa(int(p))
		}
		fmt.Fprintf(tw, "other ports:\t%s\n", strings.Join(ports, ","))
	}
	if len(l.Nodes) > 0 {
		fmt.Fprintf(tw, "nodes:\t%s\n", strings.Join(l.Nodes, ", "))
	}
	fmt.Fprintf(tw, "check:\t%s\non empty:\t%s\nannounced:\t%s (%s)\ncreated:\t%s\n",
		describeCheck(l.Check), l.OnEmpty, yesNo(l.Announced), dash(l.Reason), l.Created.Format(time.RFC3339))
	tw.Flush()
	fmt.Fprintln(w)
	header := "BACKEND\tUUID\tWEIGHT\tSTATE"
	for _, n := range l.PerNode {
		header += "\t" + n.Node
	}
	fmt.Fprintln(tw, header)
	for _, b := range l.Backends {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s", hostPort(b.IP, b.Port), b.UUID, b.Weight, b.State)
		for _, n := range l.PerNode {
			fmt.Fprintf(tw, "\t%s", dash(n.Backends[b.UUID]))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(l.PerNode) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "NODE\tANNOUNCED\tREASON")
	for _, n := range l.PerNode {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Node, yesNo(n.Announced), dash(n.Reason))
	}
	tw.Flush()
}

func describeCheck(c *api.Check) string {
	if c == nil {
		return "none: every backend is up"
	}
	s := c.Type
	if c.Type == "http" {
		s += fmt.Sprintf(" GET %s expect %s", c.Path, c.ExpectStatus)
	}
	return s + fmt.Sprintf(", every %s (%s while changing), timeout %s, rise %d, fall %d",
		c.Interval, c.FastInterval, c.Timeout, c.Rise, c.Fall)
}

func backendsUp(bs []api.LoadBalancerBackend) string {
	up := 0
	for _, b := range bs {
		if b.State == "up" {
			up++
		}
	}
	return fmt.Sprintf("%d/%d", up, len(bs))
}

// hostPort writes ip and port as an address ("[2001:db8::1]:80"); a
// local-mode backend without an address is ":8080".
func hostPort(ip string, port uint16) string {
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}
