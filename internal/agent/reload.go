package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// Reload re-reads the config file and applies the difference. On any error
// the running config stays as it was.
func (a *Agent) Reload(ctx context.Context) (api.ReloadResult, error) {
	var res api.ReloadResult
	_ = a.notify.Reloading()
	defer a.notify.Ready()
	err := a.do(ctx, func(ctx context.Context) error {
		var err error
		res, err = a.reload(ctx)
		return err
	})
	a.metrics.ReloadResult(err == nil, res.Hash)
	if err != nil {
		a.log.Error("config reload failed; keeping the running config", "event", "reload", "err", err)
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
	res := api.ReloadResult{Hash: hash, Changed: hash != a.hash || !cfg.SameSecrets(a.cfg)}
	if !res.Changed {
		return res, nil
	}
	if err := a.lbs.CheckPools(cfg.Pools); err != nil {
		return api.ReloadResult{}, &config.Errors{File: a.path, List: []*config.FieldError{{Path: "pools", Msg: err.Error()}}}
	}
	res.RestartRequired = keepRestartOnly(cfg, a.cfg)
	routerID, err := resolveRouterID(cfg)
	if err != nil {
		return api.ReloadResult{}, err
	}

	sp := a.speaker
	if res.SessionsReset = globalChanged(a.cfg, cfg) || routerID != a.routerID; res.SessionsReset {
		// The old speaker withdraws and closes before the new one dials.
		if err := a.speaker.stop(); err != nil {
			a.log.Warn("bgp: old speaker stop", "event", "reload", "err", err)
		}
		if sp, err = startSpeaker(cfg, routerID, a.log); err != nil {
			return api.ReloadResult{}, errors.Join(err, a.restoreSpeaker())
		}
	} else if err := sp.SetPeers(ctx, cfg.BGP.Peers); err != nil {
		return api.ReloadResult{}, fmt.Errorf("bgp: peers: %w", err)
	}
	if err := a.bfd.Set(ctx, bfdPeers(cfg.BGP.Peers)); err != nil {
		// config validated the timers; what is left is the manager closing.
		a.log.Error("bfd: apply peers", "event", "reload", "err", err)
	}
	res.ServicesRestarted = a.monitors.sync(cfg.Services)
	slices.Sort(res.ServicesRestarted)

	a.mu.Lock()
	a.cfg, a.hash, a.routerID, a.speaker = cfg, hash, routerID, sp
	_ = a.lbs.SetPools(cfg.Pools) // CheckPools passed above, and only the loop changes a.lbs
	a.mu.Unlock()
	return res, nil
}

// restoreSpeaker brings the old config's speaker back after a new one
// failed to start.
func (a *Agent) restoreSpeaker() error {
	sp, err := startSpeaker(a.cfg, a.routerID, a.log)
	if err != nil {
		return fmt.Errorf("restore the running config's BGP speaker: %w", err)
	}
	a.mu.Lock()
	a.speaker = sp
	a.mu.Unlock()
	return nil
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
	return names
}
