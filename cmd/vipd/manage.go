package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
)

func newReloadCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "re-read the running daemon's config file and apply the difference",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Reload(cmd.Context())
			if err != nil {
				return describeAPIError(cmd, err)
			}
			return printJSON(cmd.OutOrStdout(), res)
		},
	}
}

func newDrainCmd(g *globalFlags, drained bool) *cobra.Command {
	use, short := "undrain SERVICE", "end an operator's drain of a service"
	if drained {
		use, short = "drain SERVICE", "withdraw (or degrade) a service's routes, keeping its checks running"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Drain(cmd.Context(), args[0], drained); err != nil {
				return describeAPIError(cmd, err)
			}
			state := "undrained"
			if drained {
				state = "drained"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], state)
			return nil
		},
	}
}

// describeAPIError prints every field problem of a rejected request.
func describeAPIError(cmd *cobra.Command, err error) error {
	var he *api.HTTPError
	if errors.As(err, &he) && len(he.Details) > 0 {
		for _, d := range he.Details {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s (line %d)\n", d.Field, d.Message, d.Line)
		}
		return fmt.Errorf("rejected: %d problems; the running config is unchanged", len(he.Details))
	}
	return err
}
