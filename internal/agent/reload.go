package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// rollbackTimeout bounds putting the running config back after a reload
// failed half way, also when the reload's own context has ended.
const rollbackTimeout = 10 * time.Second

// ReloadError is a reload that failed while it was being applied. Either
// everything it had changed was put back (RolledBack), or the daemon runs a
// mix of the old and the new config, which the message says.
type ReloadError struct {
	Step        string // what failed: "bgp peers", "bfd", "bgp speaker"
	Err         error
	RolledBack  bool
	RollbackErr error // why the rollback failed, if it did
}

func (e *ReloadError) Error() string {
	if e.RolledBack {
		return fmt.Sprintf("reload: %s: %v; rolled back: the running config is unchanged", e.Step, e.Err)
	}
	return fmt.Sprintf("reload: %s: %v; rollback failed (%v): the old and the new config are both partly applied, fix the file and reload again",
		e.Step, e.Err, e.RollbackErr)
}

func (e *ReloadError) Unwrap() error { return e.Err }

// Reload re-reads the config file and applies the difference: all of it,
// or nothing (a failure half way puts back what it had changed). The file
// is read and checked before the loop is asked, so a slow read holds up
// nothing else.
func (a *Agent) Reload(ctx context.Context) (api.ReloadResult, error) {
	_ = a.notify.Reloading()
	defer a.notify.Ready()
	res, err := a.reload(ctx)
	a.metrics.ReloadResult(err == nil, res.Hash)
	if err != nil {
		a.log.Error("config reload failed", "event", "reload", "err", err)
		return res, err
	}
	a.log.Info("config reloaded", "event", "reload", "changed", res.Changed, "hash", res.Hash,
		"sessions_reset", res.SessionsReset, "services_restarted", res.ServicesRestarted,
		"restart_required", res.RestartRequired)
	return res, nil
}

func (a *Agent) reload(ctx context.Context) (api.ReloadResult, error) {
	cfg, err := config.Load(a.path)
	if err != nil {
		return api.ReloadResult{}, err
	}
	hash, err := cfg.Hash()
	if err != nil {
		return api.ReloadResult{}, fmt.Errorf("config: %w", err)
	}
	var res api.ReloadResult
	err = a.do(ctx, func(ctx context.Context) error {
		res, err = a.apply(ctx, cfg, hash)
		return err
	})
	return res, err
}

// apply makes cfg the running config, inside the loop.
func (a *Agent) apply(ctx context.Context, cfg *config.Config, hash string) (api.ReloadResult, error) {
	old := a.cfg
	res := api.ReloadResult{Hash: hash, Changed: hash != a.hash || !cfg.SameSecrets(old)}
	if !res.Changed {
		return res, nil
	}
	if err := a.lbs.CheckPools(cfg.Pools); err != nil {
		return api.ReloadResult{}, &config.Errors{File: a.path, List: []*config.FieldError{{Path: "pools", Msg: err.Error()}}}
	}
	res.RestartRequired = keepRestartOnly(cfg, old)
	routerID, err := resolveRouterID(cfg)
	if err != nil {
		return api.ReloadResult{}, err
	}
	res.SessionsReset = globalChanged(old, cfg) || routerID != a.routerID

	// The changes that can fail, each registered with its undo first: a
	// step that fails may have changed part of what it was asked to.
	var undo []func(context.Context) error
	fail := func(step string, err error) error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		var rbErrs []error
		for _, u := range slices.Backward(undo) {
			rbErrs = append(rbErrs, u(rctx))
		}
		rbErr := errors.Join(rbErrs...)
		return &ReloadError{Step: step, Err: err, RolledBack: rbErr == nil, RollbackErr: rbErr}
	}
	if res.SessionsReset {
		// With graceful restart in both configs, the speaker that stops
		// leaves its routes at the routers, and the one that starts is
		// the restart they wait for.
		restarting := old.BGP.GracefulRestart && cfg.BGP.GracefulRestart
		undo = append(undo, func(context.Context) error { return a.replaceSpeaker(old, a.routerID, restarting) })
		if err := a.replaceSpeaker(cfg, routerID, restarting); err != nil {
			return api.ReloadResult{}, fail("bgp speaker", err)
		}
	} else {
		undo = append(undo, func(ctx context.Context) error { return a.speaker.SetPeers(ctx, old.BGP.Peers) })
		if err := a.speaker.SetPeers(ctx, cfg.BGP.Peers); err != nil {
			return api.ReloadResult{}, fail("bgp peers", err)
		}
	}
	undo = append(undo, func(ctx context.Context) error { return a.bfd.Set(ctx, bfdPeers(old.BGP.Peers)) })
	if err := a.bfd.Set(ctx, bfdPeers(cfg.BGP.Peers)); err != nil {
		return api.ReloadResult{}, fail("bfd", err)
	}

	// From here on nothing fails.
	res.ServicesRestarted = restartedServices(old.Services, cfg.Services)
	a.mu.Lock()
	a.cfg, a.hash, a.routerID = cfg, hash, routerID
	_ = a.lbs.SetPools(cfg.Pools) // CheckPools passed above, and only the loop changes a.lbs
	if a.cluster != nil {
		a.cluster.SetPools(cfg.Pools)
	}
	kw := a.kube
	a.mu.Unlock()
	if kw != nil {
		kw.SetPolicy(cfg.BGP.AllowedPrefixes, cfg.Pools)
	}
	return res, nil
}

// replaceSpeaker stops the running speaker, which withdraws and closes
// (or, under graceful restart, leaves the routes) before the new one dials,
// and starts one for cfg. If that fails, no speaker runs: the caller's
// undo starts the old config's again.
func (a *Agent) replaceSpeaker(cfg *config.Config, routerID netip.Addr, restarting bool) error {
	if err := a.speaker.Stop(); err != nil {
		a.log.Warn("bgp: old speaker stop", "event", "reload", "err", err)
	}
	sp, err := a.act.startSpeaker(cfg, routerID, restarting, a.log)
	if err != nil {
		sp = stoppedSpeaker{}
	}
	a.mu.Lock()
	a.speaker = sp
	a.mu.Unlock()
	return err
}

// restartedServices names the services whose health starts over with the
// new config: new ones, and those whose checks or timing changed.
func restartedServices(old, cfg []config.Service) []string {
	var names []string
	for _, svc := range cfg {
		i := slices.IndexFunc(old, func(o config.Service) bool { return o.Name == svc.Name })
		if i < 0 || !sameHealth(old[i], svc) {
			names = append(names, svc.Name)
		}
	}
	slices.Sort(names)
	return names
}

// globalChanged reports a change that GoBGP can only take by restarting,
// which resets every session.
func globalChanged(old, cfg *config.Config) bool {
	return old.BGP.ASN != cfg.BGP.ASN || old.BGP.RouterID != cfg.BGP.RouterID ||
		old.BGP.ListenPort != cfg.BGP.ListenPort || old.BGP.GracefulRestart != cfg.BGP.GracefulRestart ||
		!slices.Equal(old.BGP.AllowedPrefixes, cfg.BGP.AllowedPrefixes)
}

// keepRestartOnly puts back into cfg the keys a running daemon cannot
// change (they hold its state and sockets), and names those that differed.
func keepRestartOnly(cfg, running *config.Config) []string {
	var names []string
	if cfg.StateDir != running.StateDir {
		names = append(names, "state_dir")
		cfg.StateDir = running.StateDir
	}
	if !reflect.DeepEqual(cfg.API, running.API) {
		names = append(names, "api")
		cfg.API = running.API
	}
	if cfg.Metrics != running.Metrics {
		names = append(names, "metrics")
		cfg.Metrics = running.Metrics
	}
	if !reflect.DeepEqual(cfg.Kubernetes, running.Kubernetes) {
		names = append(names, "kubernetes")
		cfg.Kubernetes = running.Kubernetes
	}
	if !reflect.DeepEqual(cfg.Cluster, running.Cluster) {
		names = append(names, "cluster")
		cfg.Cluster = running.Cluster
	}
	return names
}
