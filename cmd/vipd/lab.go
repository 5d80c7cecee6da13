package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/lab"
)

func newLabCmd() *cobra.Command {
	var opts lab.Options
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "a one-machine demo: a BIRD router and three vipd nodes in network namespaces (root)",
		Long: `vipd lab builds a world of network namespaces on this machine: a BIRD 2
router that spreads flows over an ECMP route, three nodes that run this vipd
and a demo HTTP service on one IPv4 and one IPv6 VIP, and a client. Then
break a node and watch the router react:

  vipd lab up           build it, wait until it converges, show the route
                        (--topology multirack: two racks of nodes on iBGP route
                        reflectors, ToRs and a core router)
  vipd lab fail n1      make n1's health check fail
  vipd lab kill n2      cut n2 off the network (BFD notices)
  vipd lab heal n1      undo fail and kill
  vipd lab status       routes, sessions and every node's state (--json)
  vipd lab down         remove everything the lab made`,
	}
	cmd.PersistentFlags().StringVar(&opts.Prefix, "prefix", lab.DefaultPrefix, "name prefix of the lab's namespaces")
	cmd.PersistentFlags().StringVar(&opts.StateDir, "state-dir", lab.DefaultStateDir, "where the lab keeps its record")
	cmd.AddCommand(
		newLabUpCmd(&opts),
		newLabDownCmd(&opts),
		newLabStatusCmd(&opts),
		newLabChangeCmd(&opts, "fail", "make NODE's health check fail", (*lab.Lab).Fail),
		newLabChangeCmd(&opts, "kill", "cut NODE off the network, vipd still running", (*lab.Lab).Kill),
		newLabChangeCmd(&opts, "heal", "restore NODE's health check and network", (*lab.Lab).Heal),
		newLabServeCmd(),
	)
	return cmd
}

// interruptible is the command's context, ended by SIGINT or SIGTERM.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// isTerminal reports whether w is a terminal, where progress redraws a line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newLabUpCmd(opts *lab.Options) *cobra.Command {
	var topology string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "build the lab, wait until it converges, show the route and the spread of requests",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := interruptible(cmd)
			defer cancel()
			binary, err := os.Executable()
			if err != nil {
				return fmt.Errorf("lab: the vipd binary for the nodes: %w", err)
			}
			o := *opts
			o.Binary = binary
			o.Topology = topology
			o.Progress = cmd.ErrOrStderr()
			o.TTY = isTerminal(o.Progress)
			out := cmd.OutOrStdout()
			l, err := lab.Up(ctx, o)
			if err != nil {
				return err
			}
			if topology == lab.TopologyMultirack {
				fmt.Fprintf(out, "lab %s is up.\n\nThe ECMP routes to the VIPs of the core (over the ToRs) and of each ToR (over its rack's nodes); routers hash flows on L4 ports:\n", l.Prefix())
			} else {
				fmt.Fprintf(out, "lab %s is up.\n\nThe router's ECMP route to the VIPs (it hashes flows on L4 ports):\n", l.Prefix())
			}
			route, err := l.Route(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, route)
			spreads, err := l.Spread(ctx, lab.SpreadRequests)
			if err != nil {
				return err
			}
			lab.WriteSpread(out, spreads, lab.SpreadRequests)
			self := os.Args[0] + " lab" // as the user ran it: bin/vipd after make demo
			if o.Prefix != lab.DefaultPrefix {
				self += " --prefix " + o.Prefix
			}
			fmt.Fprintf(out, "\nNext, as root: %[1]s fail n1 | %[1]s kill n2 | %[1]s heal n1 | %[1]s status | %[1]s down\n"+
				"Ask the service yourself: ip netns exec %[2]s-client curl http://%[3]s/\n", self, l.Prefix(), lab.VIP4)
			return nil
		},
	}
	cmd.Flags().StringVar(&topology, "topology", lab.TopologySingle,
		"single: one BIRD router peering with three nodes; multirack: two racks (n1 n2 | n3), each node over iBGP to its rack's route reflector, ToRs over eBGP to a core router")
	return cmd
}

func newLabDownCmd(opts *lab.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "stop the lab's processes and remove its namespaces and files",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(*opts)
			if errors.Is(err, lab.ErrNoLab) {
				fmt.Fprintln(cmd.OutOrStdout(), err) // nothing to do, unless it lists leftovers
				return nil
			}
			if err != nil {
				return err
			}
			if err := l.Down(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is down.\n", l.Prefix())
			return nil
		},
	}
}

func newLabStatusCmd(opts *lab.Options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the routers' routes and sessions and every node's state",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(*opts)
			if err != nil {
				return err
			}
			if !asJSON {
				return l.Status(cmd.Context(), cmd.OutOrStdout())
			}
			w, err := l.Describe(cmd.Context())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(w)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "describe the world for scripts: routers (name, role, rack, namespace, nexthops), nodes (name, rack, namespace), vips")
	return cmd
}

// newLabChangeCmd is fail, kill or heal: run change on NODE and print how
// long the router took to follow.
func newLabChangeCmd(opts *lab.Options, name, short string, change func(*lab.Lab, context.Context, string) (lab.Change, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name + " NODE",
		Short: short + "; print how long the router took to follow",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := interruptible(cmd)
			defer cancel()
			l, err := lab.Open(*opts)
			if err != nil {
				return err
			}
			c, err := change(l, ctx, args[0])
			if err != nil {
				return err
			}
			c.Write(cmd.OutOrStdout())
			return c.Err()
		},
	}
}

// newLabServeCmd is the demo service each lab node runs.
func newLabServeCmd() *cobra.Command {
	var name, listen, failFile string
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "the demo HTTP service of a lab node",
		Hidden: true,
		Args:   exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := interruptible(cmd)
			defer cancel()
			return lab.Serve(ctx, listen, name, failFile)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the node's name, the answer to GET /")
	cmd.Flags().StringVar(&listen, "listen", "[::]:80", "address to serve on")
	cmd.Flags().StringVar(&failFile, "fail-file", "", "while this file exists, GET /healthz answers 503")
	for _, f := range []string{"name", "fail-file"} {
		_ = cmd.MarkFlagRequired(f) // fails only for unknown flags
	}
	return cmd
}
