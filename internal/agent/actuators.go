package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/dataplane"
)

// runningSpeaker is a bgp.Speaker with its own lifetime: it ends only when
// Stop is called, after everything that could still change routes.
type runningSpeaker struct {
	*bgp.Speaker
	stop func() error
}

func (s *runningSpeaker) Stop() error { return s.stop() }

// startSpeaker runs a BGP speaker for cfg and configures its peers.
func startSpeaker(cfg *config.Config, routerID netip.Addr, restarting bool, log *slog.Logger) (Speaker, error) {
	sp := bgp.New(bgp.Global{
		ASN:             cfg.BGP.ASN,
		RouterID:        routerID,
		ListenPort:      cfg.BGP.ListenPort,
		AllowedPrefixes: cfg.BGP.AllowedPrefixes,
		GracefulRestart: cfg.BGP.GracefulRestart,
		Restarting:      restarting,
	}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- sp.Run(ctx, func() { close(ready) }) }()
	s := &runningSpeaker{Speaker: sp, stop: func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		return nil
	}}
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	if err := sp.SetPeers(ctx, cfg.BGP.Peers); err != nil {
		return nil, errors.Join(fmt.Errorf("bgp: peers: %w", err), s.stop())
	}
	return s, nil
}

// runningBFD is a bfd.Manager with its own lifetime, like the speaker: it
// ends (sending AdminDown) only when Stop is called, after the BGP
// sessions are closed.
type runningBFD struct {
	*bfd.Manager
	stop func() error
}

func (b *runningBFD) Stop() error { return b.stop() }

// startBFD runs a BFD manager for peers and hands each of its events to
// onEvent until Stop.
func startBFD(peers []bfd.Peer, log *slog.Logger, onEvent func(context.Context, bfd.Event)) (BFD, error) {
	m := bfd.NewManager(log)
	if err := m.Set(context.Background(), peers); err != nil {
		return nil, fmt.Errorf("bgp.peers[].bfd: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone, eventsDone := make(chan error, 1), make(chan struct{})
	go func() { runDone <- m.Run(ctx) }()
	go func() {
		defer close(eventsDone)
		for ev := range m.Events() { // closed when Run returns
			onEvent(ctx, ev)
		}
	}()
	return &runningBFD{Manager: m, stop: func() error {
		cancel()
		err := <-runDone
		<-eventsDone
		return err
	}}, nil
}

// nftables is the nftables data plane, created on first use.
type nftables struct {
	*dataplane.Table
}

func newNFTables(log *slog.Logger) (DataPlane, error) {
	t, err := dataplane.New(log)
	if err != nil {
		return nil, err
	}
	return nftables{t}, nil
}

func (nftables) HostSettings() ([]dataplane.Setting, error) {
	return dataplane.ApplyHostSettings(dataplane.ProcSys, true)
}

// stoppedSpeaker stands in while no speaker runs: a reload's new speaker
// failed to start and so did the old config's. Changes fail, so the loop
// retries; nothing is announced.
type stoppedSpeaker struct{}

func (stoppedSpeaker) SetPeers(context.Context, []config.Peer) error       { return bgp.ErrNotRunning }
func (stoppedSpeaker) SetRoutes(context.Context, []bgp.Route) error        { return bgp.ErrNotRunning }
func (stoppedSpeaker) Announced(netip.Prefix) bool                         { return false }
func (stoppedSpeaker) ResetPeer(context.Context, netip.Addr, string) error { return bgp.ErrNotRunning }
func (stoppedSpeaker) Status() bgp.Status                                  { return bgp.Status{} }
func (stoppedSpeaker) Stop() error                                         { return nil }
