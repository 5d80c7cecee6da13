// An external test, so that it can use worldtest, which imports etcd.
package etcd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/etcd"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

const (
	// settle bounds waiting for a leader election or a reconnect on a
	// busy machine; with the cluster's 1 s election timeout both take
	// about a second.
	settle = 30 * time.Second
	// blocked is how long a dial or request from a partitioned member
	// gets before the test calls it hung.
	blocked = 2 * time.Second
)

// TestCluster starts a three-member cluster next to a node and checks, in
// order, that a write through one member is read through another, that
// the cluster stays writable with its leader killed, that the member
// restarted catches up, and that a partition cuts the node off from every
// member, silently, until it is healed.
func TestCluster(t *testing.T) {
	spec, err := etcd.AddMembers(testnet.Spec{Nodes: []testnet.NodeSpec{{Name: "n1", Address: netip.MustParseAddr("10.255.255.11")}}})
	if err != nil {
		t.Fatal(err)
	}
	w := worldtest.New(t, spec)
	c := worldtest.Etcd(t, w)
	n1 := &w.Node("n1").Host
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	endpoints := c.Endpoints()
	if len(endpoints) != etcd.Size {
		t.Fatalf("endpoints %q: want %d", endpoints, etcd.Size)
	}
	kv := newKV(n1)

	t.Run("ReadWrite", func(t *testing.T) {
		if err := kv.put(ctx, endpoints[0], "greeting", "hello"); err != nil {
			t.Fatal(err)
		}
		// Reads are linearizable: another member sees the write at once.
		if got, err := kv.get(ctx, endpoints[2], "greeting"); err != nil || got != "hello" {
			t.Fatalf("get through %s: %q, %v; want \"hello\"", endpoints[2], got, err)
		}
	})

	// The leader, so that the others must elect a new one.
	killed := leader(ctx, t, kv, endpoints)
	others := []string{endpoints[(killed+1)%etcd.Size], endpoints[(killed+2)%etcd.Size]}
	name := fmt.Sprintf("etcd%d", killed+1)

	t.Run("KillLeader", func(t *testing.T) {
		if err := c.Kill(killed); err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(killed); err != nil {
			t.Errorf("killing a killed member: %v", err)
		}
		if err := c.Healthy(ctx); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Healthy with %s killed: %v, want an error naming it", name, err)
		}
		err := testnet.WaitFor(ctx, settle, func(ctx context.Context) error {
			return kv.put(ctx, others[0], "while", "down")
		})
		if err != nil {
			t.Fatalf("put with the leader killed: %v", err)
		}
		if got, err := kv.get(ctx, others[1], "while"); err != nil || got != "down" {
			t.Fatalf("get with the leader killed: %q, %v; want \"down\"", got, err)
		}
	})

	t.Run("Restart", func(t *testing.T) {
		if err := c.Restart(ctx, (killed+1)%etcd.Size); err == nil {
			t.Error("restarting a running member: no error")
		}
		if err := c.Restart(ctx, killed); err != nil {
			t.Fatal(err)
		}
		if err := c.Healthy(ctx); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		// What was written while it was down, read through it.
		if got, err := kv.get(ctx, endpoints[killed], "while"); err != nil || got != "down" {
			t.Fatalf("get through the restarted member: %q, %v; want \"down\"", got, err)
		}
	})

	t.Run("Partition", func(t *testing.T) {
		// Opened before the partition: it must stall, not be reset.
		open, err := n1.DialContext(ctx, "tcp", hostPort(t, endpoints[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		heal, err := c.Partition(ctx, n1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Partition(ctx, n1); err != nil {
			t.Fatalf("partitioning again: %v", err)
		}
		for _, ep := range endpoints {
			dialCtx, cancel := context.WithTimeout(ctx, blocked)
			conn, err := n1.DialContext(dialCtx, "tcp", hostPort(t, ep))
			cancel()
			if err == nil {
				conn.Close()
				t.Fatalf("dial %s from the partitioned node: connected", ep)
			}
			if !isTimeout(err) {
				t.Errorf("dial %s from the partitioned node: %v, want a timeout (packets dropped, not refused)", ep, err)
			}
		}
		if err := stalls(open); err != nil {
			t.Errorf("connection opened before the partition: %v", err)
		}
		if err := c.Healthy(ctx); err != nil {
			t.Errorf("the cluster itself during the partition: %v", err)
		}
		if err := heal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := heal(ctx); err != nil {
			t.Errorf("healing again: %v", err)
		}
		for _, ep := range endpoints {
			err := testnet.WaitFor(ctx, settle, func(ctx context.Context) error {
				return kv.put(ctx, ep, "healed", ep)
			})
			if err != nil {
				t.Errorf("put through %s after healing: %v", ep, err)
			}
		}
	})
}

// leader returns the index of the member that leads, as every member
// sees it.
func leader(ctx context.Context, t *testing.T, kv *kv, endpoints []string) int {
	t.Helper()
	ids := map[string]int{} // member id to index
	var leaders []string
	for i, ep := range endpoints {
		var status struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := kv.call(ctx, ep+"/v3/maintenance/status", struct{}{}, &status); err != nil {
			t.Fatal(err)
		}
		ids[status.Header.MemberID] = i
		leaders = append(leaders, status.Leader)
	}
	i, ok := ids[leaders[0]]
	if agreed := len(slices.Compact(slices.Clone(leaders))) == 1; !ok || !agreed {
		t.Fatalf("members %v see leaders %v: want one they agree on", ids, leaders)
	}
	return i
}

// TestStartRejects checks what Start refuses before it starts anything.
func TestStartRejects(t *testing.T) {
	if _, err := etcd.Start(t.Context(), nil, t.TempDir()); err == nil {
		t.Error("Start without hosts: no error")
	}
}

// TestAddMembers checks that the members go on free addresses after the
// spec's own hosts, and that the spec passed in is left alone.
func TestAddMembers(t *testing.T) {
	hosts := []testnet.NodeSpec{{Name: "web", Address: netip.MustParseAddr("10.255.255.254")}}
	spec := testnet.Spec{Hosts: hosts}
	got, err := etcd.AddMembers(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"web=10.255.255.254", "etcd1=10.255.255.253", "etcd2=10.255.255.252", "etcd3=10.255.255.251"}
	var have []string
	for _, h := range got.Hosts {
		have = append(have, h.Name+"="+h.Address.String())
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("hosts %v, want %v", have, want)
	}
	if len(spec.Hosts) != 1 {
		t.Errorf("the spec passed in changed: %v", spec.Hosts)
	}
}

// kv writes and reads keys through etcd's v3 JSON gateway from inside a
// world member, as a client there would: no etcd client library needed.
type kv struct{ client *http.Client }

func newKV(from *testnet.Host) *kv {
	return &kv{client: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: from.DialContext, DisableKeepAlives: true},
	}}
}

func (k *kv) put(ctx context.Context, endpoint, key, value string) error {
	return k.call(ctx, endpoint+"/v3/kv/put", map[string]string{"key": b64(key), "value": b64(value)}, nil)
}

// get returns key's value; a missing key is an error.
func (k *kv) get(ctx context.Context, endpoint, key string) (string, error) {
	var resp struct {
		KVs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := k.call(ctx, endpoint+"/v3/kv/range", map[string]string{"key": b64(key)}, &resp); err != nil {
		return "", err
	}
	if len(resp.KVs) != 1 {
		return "", fmt.Errorf("range %q at %s: %d keys, want 1", key, endpoint, len(resp.KVs))
	}
	v, err := base64.StdEncoding.DecodeString(resp.KVs[0].Value)
	return string(v), err
}

// call POSTs req as JSON to url and decodes the reply into resp, if set.
func (k *kv) call(ctx context.Context, url string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	res, err := k.client.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, res.Status, reply)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(reply, resp); err != nil {
		return fmt.Errorf("POST %s: %w: %s", url, err, reply)
	}
	return nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// hostPort is an endpoint URL's address, for a dial.
func hostPort(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// stalls sends a health request on conn and succeeds if no answer, reset
// or close comes back within blocked.
func stalls(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(blocked)); err != nil {
		return err
	}
	// Written to the socket's buffer even when the peer is cut off.
	if _, err := io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: etcd\r\n\r\n"); err != nil && !isTimeout(err) {
		return fmt.Errorf("write: %w", err)
	}
	n, err := conn.Read(make([]byte, 1))
	if isTimeout(err) {
		return nil
	}
	return fmt.Errorf("read: %d bytes, %v; want a timeout", n, err)
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
