package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/config"
)

// errInvalid is returned after the errors were printed, so main adds nothing.
var errInvalid = errors.New("config is invalid")

func newCheckConfigCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "validate a config file and print every error",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			_, err := config.Load(path)
			var errs *config.Errors
			if errors.As(err, &errs) {
				for _, fe := range errs.List {
					fmt.Fprintf(out, "%s: %v\n", path, fe)
				}
				noun := "errors"
				if len(errs.List) == 1 {
					noun = "error"
				}
				return fmt.Errorf("%s: %w (%d %s)", path, errInvalid, len(errs.List), noun)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: ok\n", path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/vipd/vipd.yaml", "config file")
	return cmd
}
