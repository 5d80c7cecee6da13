package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/store"
)

// importTimeout bounds a whole import; each write has its own bound too.
const importTimeout = 5 * time.Minute

func newClusterCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "the cluster store: its members, and moving a node's load balancers into it",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("want a subcommand\n%s", cmd.UsageString())}
			}
			return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], cmd.UsageString())}
		},
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterImportCmd())
	return cmd
}

func newClusterStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the cluster's members and what each announces (GET /cluster)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printCluster(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reply as JSON")
	return cmd
}

func newClusterImportCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "import",
		Short: "copy this node's stored load balancers into an empty cluster, keeping their UUIDs and addresses",
		Long: `vipd cluster import reads the load balancers (and their drains) from the
state_dir of the config given with -c, and writes them into the etcd cluster
of its cluster section, which must hold no load balancer yet. Stop vipd
first: the state file is locked while it runs. Then start vipd with the
cluster section; the load balancers keep their UUIDs and addresses.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if cfg.Cluster == nil {
				return fmt.Errorf("%s: no cluster section: nothing to import into", path)
			}
			n, err := importLoadBalancers(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d load balancers into %s on %s\n",
				n, cfg.Cluster.Etcd.Prefix, strings.Join(cfg.Cluster.Etcd.Endpoints, ", "))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/vipd/vipd.yaml", "config file")
	return cmd
}

func importLoadBalancers(ctx context.Context, cfg *config.Config) (int, error) {
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	lbs, err := st.LoadBalancers()
	if err != nil {
		return 0, err
	}
	names, err := st.Drained()
	if err != nil {
		return 0, err
	}
	drained := make(map[string]bool)
	for _, n := range names {
		if lbName, ok := strings.CutPrefix(n, "lb/"); ok {
			drained[lbName] = true
		}
	}
	s, err := cluster.New(cluster.Options{Config: *cfg.Cluster, Node: cfg.Cluster.NodeName, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	n, err := s.Import(ctx, lbs, drained)
	return n, errors.Join(err, s.Close())
}

// printCluster prints the cluster section of vipd status and vipd
// cluster status.
func printCluster(w io.Writer, c api.ClusterStatus, now time.Time) {
	conn := "connected"
	if !c.Connected {
		conn = "etcd unreachable (serving the last state known, writes refused)"
		if c.LastError != "" {
			conn += ": " + c.LastError
		}
	}
	if !c.Synced {
		conn += ", waiting for the first list"
	}
	fmt.Fprintf(w, "cluster: node %s, %s (%s), revision %d, %d load balancers (%d served here)\n",
		c.Node, conn, since(c.Since, now), c.Revision, c.LoadBalancers, c.Serving)
	if c.NameConflict != "" {
		fmt.Fprintf(w, "WARNING: %s\n", c.NameConflict)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tHEALTH\tSTARTED\tANNOUNCING")
	for _, n := range c.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, dash(n.Version), n.Health, since(n.Started, now), dash(strings.Join(n.Announcing, ", ")))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
