package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vipd/vipd/internal/agent"
	"github.com/vipd/vipd/internal/api"
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
			a := agent.New(path, cfg, version, log)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopSignals := handleSignals(ctx, cancel, a, log)
			defer stopSignals()
			return a.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/vipd/vipd.yaml", "config file")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// reloader is what handleSignals drives; *agent.Agent satisfies it.
type reloader interface {
	Reload(ctx context.Context) (api.ReloadResult, error)
	Hurry()
}

// handleSignals maps signals to the agent: SIGHUP reloads; the first
// SIGTERM or SIGINT starts the shutdown (cancel), a second one cuts the
// shutdown grace period short. A reload runs on its own goroutine, so a
// stop signal is acted on at once even while a reload is stuck; SIGHUPs
// that arrive during a reload fold into one more reload after it. stop
// ends the handling and waits for a reload in progress, which the
// cancelled ctx ends.
func handleSignals(ctx context.Context, cancel context.CancelFunc, a reloader, log *slog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	quit, done := make(chan struct{}), make(chan struct{})
	reloads := make(chan struct{}, 1) // a pending reload
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-quit:
				return
			case <-reloads:
				_, _ = a.Reload(ctx) // Reload logs its result; ctx ends it at shutdown
			}
		}
	})
	go func() {
		defer close(done)
		stopping := false
		for {
			select {
			case <-quit:
				return
			case sig := <-sigs:
				switch {
				case sig == syscall.SIGHUP:
					log.Info("SIGHUP: reloading", "event", "signal")
					select {
					case reloads <- struct{}{}:
					default: // one is pending already
					}
				case !stopping:
					log.Info("stopping", "event", "signal", "signal", sig.String())
					stopping = true
					cancel()
				default:
					log.Info("second stop signal: skipping the shutdown grace period", "event", "signal")
					a.Hurry()
				}
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(quit)
		<-done
		wg.Wait()
	}
}
