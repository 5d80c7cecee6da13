package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

const (
	// shutdownTimeout bounds withdrawing everything and stopping GoBGP.
	shutdownTimeout = 10 * time.Second
	// withdrawSettle is how long shutdown lets withdrawals leave before the
	// Cease. GoBGP exposes no send-queue depth to wait on; the Cease alone
	// would also make peers drop the routes.
	withdrawSettle = 300 * time.Millisecond
	// ceaseWait bounds waiting for sessions to close after our Cease.
	ceaseWait = 2 * time.Second
	// shutdownMessage is the RFC 8203 shutdown communication routers log.
	shutdownMessage = "vipd shutting down"
)

// Run starts GoBGP, calls ready once SetPeers and SetRoutes work, and blocks
// until ctx ends. Then, within a new bounded context, it withdraws every
// route, closes every session with a Cease NOTIFICATION and stops GoBGP; it
// returns after that.
func (s *Speaker) Run(ctx context.Context, ready func()) error {
	if err := validateGlobal(s.global); err != nil {
		return err
	}
	bs, serveDone, err := s.start(ctx)
	if err != nil {
		return err
	}
	defer s.stopRelays()
	if s.relays != nil {
		s.relays.bs = bs
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if err := bs.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeerEvent}, server.WatchPeer()); err != nil {
		stopServer(context.Background(), bs, serveDone, false)
		return fmt.Errorf("bgp: watch peer events: %w", err)
	}

	s.applyMu.Lock()
	s.gobgp = bs
	if s.global.GracefulRestart && s.global.Restarting {
		s.restartUntil = time.Now().Add(RestartTime)
	}
	s.applyMu.Unlock()
	s.log.Info("bgp speaker started", "event", "speaker_started",
		"asn", s.global.ASN, "router_id", s.global.RouterID, "listen_port", s.global.ListenPort,
		"graceful_restart", s.global.GracefulRestart, "restarting", s.global.GracefulRestart && s.global.Restarting)

	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.maintain(loopCtx, bs)
	}()
	if ready != nil {
		ready()
	}

	<-ctx.Done()
	stopLoop()
	<-loopDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.shutdown(shutdownCtx, serveDone)
}

func validateGlobal(g Global) error {
	var errs []error
	if g.ASN == 0 {
		errs = append(errs, errors.New("asn: must be set"))
	}
	if !g.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router_id %v: must be an IPv4 address", g.RouterID))
	}
	if g.ListenPort < -1 || g.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen_port %d: must be -1 or 0..65535", g.ListenPort))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	return nil
}

// start creates and starts the GoBGP server with vipd's policies.
// serveDone closes when GoBGP's main loop has ended.
func (s *Speaker) start(ctx context.Context) (*server.BgpServer, <-chan struct{}, error) {
	listen := &api.Global{
		Asn:             s.global.ASN,
		RouterId:        s.global.RouterID.String(),
		ListenPort:      s.global.ListenPort,
		ListenAddresses: s.listenAddresses,
	}
	if s.relays != nil {
		// Only the relays connect to GoBGP, on loopback; they own
		// listen_port.
		if err := s.relays.pickListener(); err != nil {
			return nil, nil, err
		}
		listen.ListenPort = int32(s.relays.listener.Port())
		listen.ListenAddresses = []string{s.relays.listener.Addr().String()}
		if s.global.ListenPort >= 0 {
			if err := s.relays.listen(s.listenAddresses, s.global.ListenPort); err != nil {
				return nil, nil, err
			}
		}
	}
	bs := server.NewBgpServer(server.LoggerOption(slog.New(&gobgpLogHandler{sink: s}), nil))
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		bs.Serve()
	}()

	err := bs.StartBgp(ctx, &api.StartBgpRequest{Global: listen})
	if err != nil {
		err = fmt.Errorf("start: %w", err)
	} else if err = installPolicies(ctx, bs, policyInput{asn: s.global.ASN, allowed: s.global.AllowedPrefixes}); err == nil {
		err = assignPolicies(ctx, bs)
	}
	if err != nil {
		stopServer(context.Background(), bs, serveDone, false)
		s.stopRelays()
		return nil, nil, fmt.Errorf("bgp: %w", err)
	}
	return bs, serveDone, nil
}

// shutdown withdraws every route, closes every session with a Cease
// NOTIFICATION (administrative shutdown), then stops GoBGP.
func (s *Speaker) shutdown(ctx context.Context, serveDone <-chan struct{}) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	bs := s.gobgp
	s.gobgp = nil

	var errs []error
	if s.global.GracefulRestart {
		// No withdrawal, no NOTIFICATION: the routers keep our routes as
		// stale until we are back (RFC 4724).
		if err := stopServer(ctx, bs, serveDone, true); err != nil {
			errs = append(errs, err)
		}
		clear(s.peers)
		s.state.stopped(time.Now())
		s.log.Info("bgp speaker stopped for a graceful restart; routes left at the routers", "event", "speaker_stopped")
		return errors.Join(errs...)
	}
	n := len(s.routes)
	if err := bs.DeletePath(apiutil.DeletePathRequest{DeleteAll: true}); err != nil {
		errs = append(errs, fmt.Errorf("bgp: withdraw all routes: %w", err))
	} else {
		clear(s.routes)
		s.log.Info("all routes withdrawn", "event", "withdraw_all", "withdrawn", n)
		if n > 0 {
			wait(ctx, withdrawSettle)
		}
	}
	s.closeSessions(ctx, bs)
	if err := stopServer(ctx, bs, serveDone, false); err != nil {
		errs = append(errs, err)
	}
	clear(s.peers)
	s.state.stopped(time.Now())
	s.state.setRoutes(nil)
	s.log.Info("bgp speaker stopped", "event", "speaker_stopped")
	return errors.Join(errs...)
}

// closeSessions sends each established peer a Cease with subcode
// Administrative Shutdown and waits, briefly, until none is established.
// Stopping GoBGP alone would say "peer de-configured", which reads to an
// operator like a config change rather than a planned stop.
func (s *Speaker) closeSessions(ctx context.Context, bs *server.BgpServer) {
	peers := s.state.established()
	for _, p := range peers {
		req := &api.ShutdownPeerRequest{Address: p.neighbor.String(), Communication: shutdownMessage}
		if err := bs.ShutdownPeer(ctx, req); err != nil {
			s.log.Warn("bgp session not shut down", "event", "peer_shutdown", "peer", p.name, "address", p.addr, "err", err)
		}
	}
	if len(peers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ceaseWait)
	defer cancel()
	for len(s.state.established()) > 0 {
		select {
		case <-s.notify:
		case <-ctx.Done():
			return
		}
	}
	s.log.Info("bgp sessions closed", "event", "sessions_closed", "peers", len(peers))
}

// stopServer stops GoBGP and waits for it within ctx. With
// gracefulRestart, GoBGP closes graceful-restart sessions without a
// NOTIFICATION.
func stopServer(ctx context.Context, bs *server.BgpServer, serveDone <-chan struct{}, gracefulRestart bool) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		req := &api.StopBgpRequest{AllowGracefulRestart: gracefulRestart}
		// It fails only when GoBGP is not serving: stopped either way.
		_ = bs.StopBgp(context.Background(), req)
		<-serveDone
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bgp: stop GoBGP: %w", ctx.Err())
	}
}

// wait pauses for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
