package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/agent"
	"github.com/vipd/vipd/internal/config"
)

func newRunCmd() *cobra.Command {
	var path, level string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the daemon in the foreground",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(level)); err != nil {
				return usageError{err}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ignoreHangup(ctx, log)
			return agent.New(cfg, version, log).Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/vipd/vipd.yaml", "config file")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// ignoreHangup keeps SIGHUP from killing the daemon until reload exists.
func ignoreHangup(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Warn("SIGHUP ignored: reload is not available in this version", "event", "signal")
			}
		}
	}()
}
