// Command vipd is the vipd daemon and its CLI.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks a command-line mistake (exit 2).
type usageError struct{ error }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "vipd:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

type globalFlags struct {
	socket string
	api    string // a remote API's URL; wins over socket
	token  string // the remote API's token file
	caFile string // CAs to trust for an https API
}

// client returns a client for the remote API if --api is set, else for
// the control socket.
func (g *globalFlags) client() (*api.Client, error) {
	if g.api == "" {
		if g.token != "" || g.caFile != "" {
			return nil, usageError{errors.New("--token-file and --ca-file need --api")}
		}
		return api.NewClient(g.socket), nil
	}
	if g.token == "" {
		return nil, usageError{errors.New("--api needs --token-file")}
	}
	return api.NewRemoteClient(g.api, g.token, g.caFile)
}

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "vipd",
		Short:         "vipd announces healthy service addresses over BGP",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version, as well as the version command.
		Version: versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&g.socket, "socket", config.DefaultSocket, "the daemon's control socket")
	root.PersistentFlags().StringVar(&g.api, "api", "", "a daemon's TCP API instead of the socket, e.g. https://host:10001")
	root.PersistentFlags().StringVar(&g.token, "token-file", "", "the file holding the --api bearer token")
	root.PersistentFlags().StringVar(&g.caFile, "ca-file", "", "PEM CA certificates to trust for an https --api")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n%s", err, cmd.UsageString())}
	})
	root.AddCommand(
		newRunCmd(),
		newCheckConfigCmd(),
		newStatusCmd(&g),
		newReloadCmd(&g),
		newDrainCmd(&g, true),
		newDrainCmd(&g, false),
		newLBCmd(&g),
		newClusterCmd(&g),
		newVersionCmd(),
		newLabCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// printJSON writes v as indented JSON, the form every --json output takes.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
