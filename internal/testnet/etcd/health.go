package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// probeTimeout bounds one health request. etcd 3.4 answers /health only
// after a quorum read of up to a second.
const probeTimeout = 3 * time.Second

// Healthy asks every member once for its health and returns nil if all
// of them are healthy. etcd calls a member healthy when it has a leader
// and can complete a quorum read, so a nil error means the whole cluster
// is up and agrees. Otherwise the error names each unhealthy member.
func (c *Cluster) Healthy(ctx context.Context) error {
	c.mu.Lock()
	members := c.members
	c.mu.Unlock()
	var errs []error
	for _, m := range members {
		errs = append(errs, m.healthy(ctx))
	}
	return errors.Join(errs...)
}

// healthy asks member m for GET /health, dialling from inside its own
// namespace: the test process has no route into the LAN.
func (m *member) healthy(ctx context.Context) error {
	client := &http.Client{
		Timeout:   probeTimeout,
		Transport: &http.Transport{DialContext: m.host.DialContext, DisableKeepAlives: true},
	}
	url := clientURL(m.host) + "/health"
	if err := getHealth(ctx, client, url); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.host.Name(), err)
	}
	return nil
}

// getHealth succeeds when url answers 200 with {"health":"true"}.
func getHealth(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	var health struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &health); err != nil || resp.StatusCode != http.StatusOK || health.Health != "true" {
		return fmt.Errorf("GET %s: %s: %q", url, resp.Status, body)
	}
	return nil
}

// waitHealthy probes members until all are healthy, for at most timeout
// or until ctx ends. It gives up at once, with the log's tail, when a
// member's process has ended: bad flags or a data dir it refuses.
func (c *Cluster) waitHealthy(ctx context.Context, timeout time.Duration, members []*member) error {
	err := testnet.WaitFor(ctx, timeout, func(ctx context.Context) error {
		var errs []error
		for _, m := range members {
			c.mu.Lock()
			proc := m.proc
			c.mu.Unlock()
			if proc.Exited() {
				return testnet.Final(fmt.Errorf("etcd member %s (pid %d) exited; log %s:\n%s", m.host.Name(), proc.PID(), proc.LogPath(), tail(proc, 20)))
			}
			errs = append(errs, m.healthy(ctx))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	return nil
}
