package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/api"
)

// The seed guide's requests, verbatim but for the backend's address: a
// load balancer named with a space, and a backend added without a
// Content-Type header.
const (
	guideCreate  = `{"name":"test loadbalancer", "port": 6443}`
	guideBackend = `{"ip":"10.255.255.21", "port": 8080}`
	guideName    = "test loadbalancer"
)

// TestLoadBalancerGuideRequests sends the guide's requests over the
// control socket and over TCP with the token, as curl would (the create
// with Content-Type: application/json, the backend without any), then
// finds the load balancer by name and by UUID from the CLI, through a
// shell's quoting, and sends traffic through it.
func TestLoadBalancerGuideRequests(t *testing.T) {
	w := lbWorld(t, 1)
	r1, n1, c1 := w.Router("r1"), w.Node("n1"), w.Client()
	startBackends(t, w)
	startTCPAPINode(t, n1, "guide-token")

	socket := guideTransport{name: "socket", base: "http://vipd", client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", n1.Socket())
		}}}}
	tcp := guideTransport{name: "tcp", base: "http://127.0.0.1:10001", token: "guide-token", client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return n1.DialContext(ctx, network, address)
		}}}}

	// Over the socket: created (201). Over TCP, the same request again
	// finds the same load balancer (200): the name is its identity.
	var created api.LoadBalancer
	for i, tr := range []guideTransport{socket, tcp} {
		want := http.StatusCreated
		if i > 0 {
			want = http.StatusOK
		}
		var l api.LoadBalancer
		if code, body := tr.do(t, http.MethodPost, "/loadbalancer", guideCreate, "application/json"); code != want || json.Unmarshal(body, &l) != nil {
			t.Fatalf("%s: POST /loadbalancer %s: %d %s, want %d", tr.name, guideCreate, code, body, want)
		}
		if l.Name != guideName || l.Port != 6443 {
			t.Errorf("%s: created %+v, want name %q port 6443", tr.name, l, guideName)
		}
		if i == 0 {
			created = l
		} else if l.UUID != created.UUID {
			t.Errorf("%s: the same request gave load balancer %s, want %s", tr.name, l.UUID, created.UUID)
		}
	}
	// The same name with another spec is a conflict, not a second one.
	if code, body := tcp.do(t, http.MethodPost, "/loadbalancer", `{"name":"test loadbalancer", "port": 6444}`, "application/json"); code != http.StatusConflict {
		t.Errorf("same name, other port: %d %s, want 409", code, body)
	}

	// The backend, with no Content-Type, over each transport: the second
	// adds nothing new.
	for _, tr := range []guideTransport{tcp, socket} {
		code, body := tr.do(t, http.MethodPost, "/loadbalancer/"+created.UUID+"/backend", guideBackend, "")
		var l api.LoadBalancer
		if code >= 300 || json.Unmarshal(body, &l) != nil || len(l.Backends) != 1 {
			t.Fatalf("%s: POST backend %s without Content-Type: %d %s, want one backend", tr.name, guideBackend, code, body)
		}
	}

	// The CLI finds it by name (quoted in a shell) and by UUID.
	for _, arg := range []string{"'" + guideName + "'", created.UUID} {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("%s lb show %s --json --socket %s", vipdBin, arg, n1.Socket()))
		out, err := cmd.CombinedOutput()
		var l api.LoadBalancer
		if err != nil || json.Unmarshal(out, &l) != nil || l.UUID != created.UUID {
			t.Errorf("vipd lb show %s: %v\n%s\nwant load balancer %s", arg, err, out, created.UUID)
		}
	}

	// Announced under its name, and serving.
	eip := netip.MustParseAddr(created.EIP)
	waitFIB(t, r1, netip.PrefixFrom(eip, 32), n1.Addr4())
	if got, err := get(t.Context(), c1, netip.AddrPortFrom(eip, 6443), 0); err != nil || got != "b1" {
		t.Errorf("GET through %s:6443: %q, %v; want b1", eip, got, err)
	}
	if st := status(t, n1); len(st.LoadBalancers) != 1 || st.LoadBalancers[0].Name != guideName || !st.LoadBalancers[0].Announced {
		t.Errorf("status load balancers %+v, want %q announced", st.LoadBalancers, guideName)
	}

	// Deleted by name from the CLI.
	if out, err := vipdCLI(n1, "lb", "delete", guideName); err != nil {
		t.Fatalf("vipd lb delete %q: %v\n%s", guideName, err, out)
	}
	if lbs, err := lbClient(n1).LoadBalancers(t.Context()); err != nil || len(lbs) != 0 {
		t.Errorf("after delete: %+v, %v; want none", lbs, err)
	}
}

// guideTransport sends raw requests to the API, like curl.
type guideTransport struct {
	name, base, token string
	client            *http.Client
}

// do sends body with the given Content-Type ("" sends none) and returns
// the status and body.
func (g guideTransport) do(t *testing.T, method, path, body, contentType string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, g.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if g.token != "" {
		req.Header.Set("Authorization", "Bearer "+g.token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", g.name, method, path, err)
	}
	defer resp.Body.Close()
	if got := req.Header.Get("Content-Type"); got != contentType {
		t.Fatalf("%s: request sent Content-Type %q, want %q", g.name, got, contentType)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}
