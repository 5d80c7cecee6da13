// Package kubeapi runs a real Kubernetes control plane for vipd's tests
// and lab: etcd and kube-apiserver on free loopback ports, with a fresh CA,
// serving certificate, service-account signing key and admin token. There
// is no controller-manager, scheduler or kubelet, so nothing reconciles:
// callers create the Nodes, Services and EndpointSlices they need.
//
// The binaries come from test/kubeassets/build.sh (VIPD_KUBE_ASSETS).
// Everything the control plane writes lives in Options.Dir; it starts only
// the two processes, knows them by PID and ends only them.
//
// Nodes run in network namespaces and cannot reach the host's loopback:
// Forward relays a listener inside a namespace to the API server.
package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"k8s.io/client-go/rest"
)

// Time limits for the start of each process; a warm start takes 3-5 s.
const (
	etcdTimeout      = 30 * time.Second
	apiServerTimeout = 90 * time.Second
)

// Options configure Start.
type Options struct {
	// AssetsDir holds kube-apiserver, kubectl and etcd (VIPD_KUBE_ASSETS).
	AssetsDir string
	// Dir receives the credentials, etcd's data and the logs; Close removes
	// it. Empty: a new temp dir.
	Dir string
}

// ControlPlane is a running etcd and kube-apiserver. Its methods are safe
// for concurrent use.
type ControlPlane struct {
	assets string
	dir    string
	creds  credentials
	port   int      // kube-apiserver's secure port, kept across restarts
	args   []string // kube-apiserver's command line, reused by StartAPIServer
	etcd   *process

	mu        sync.Mutex
	apiServer *process // nil while stopped
	closed    bool
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. ctx bounds the start only: the processes run until Close.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	for _, bin := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(opts.AssetsDir, bin)); err != nil {
			return nil, fmt.Errorf("kubeapi: assets %q (test/kubeassets/build.sh makes them): %w", opts.AssetsDir, err)
		}
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vipd-kubeapi-"); err != nil {
			return nil, fmt.Errorf("kubeapi: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	cp := &ControlPlane{assets: opts.AssetsDir, dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("kubeapi: %w", err), cp.Close())
		}
	}()
	if cp.creds, err = writeCredentials(dir); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://" + loopback(ports[0])
	if err := cp.startEtcd(ctx, etcdURL, "http://"+loopback(ports[1])); err != nil {
		return nil, err
	}
	cp.port = ports[2]
	cp.args = cp.apiServerArgs(etcdURL)
	cp.mu.Lock()
	err = cp.startAPIServer(ctx)
	cp.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := cp.writeAdminKubeconfig(); err != nil {
		return nil, err
	}
	return cp, nil
}

// startEtcd starts a one-member etcd serving clients on clientURL and
// waits until it reports healthy.
func (cp *ControlPlane) startEtcd(ctx context.Context, clientURL, peerURL string) error {
	dataDir := filepath.Join(cp.dir, "etcd")
	if err := os.Mkdir(dataDir, 0o700); err != nil { // etcd insists on 0700
		return err
	}
	p, err := startProcess("etcd", filepath.Join(cp.dir, "etcd.log"), []string{
		filepath.Join(cp.assets, "etcd"),
		"--name=vipd-test",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=vipd-test=" + peerURL,
		"--logger=zap",
		"--log-outputs=stderr",
	})
	if err != nil {
		return err
	}
	cp.etcd = p
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	return waitFor(ctx, p, etcdTimeout, func(ctx context.Context) error {
		return get(ctx, client, clientURL+"/health", "")
	})
}

// apiServerArgs is kube-apiserver's command line. The flags are those of
// a small real cluster with RBAC on, minus what needs a controller-manager
// or kubelets.
func (cp *ControlPlane) apiServerArgs(etcdURL string) []string {
	file := func(name string) string { return filepath.Join(cp.dir, name) }
	return []string{
		filepath.Join(cp.assets, "kube-apiserver"),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The reconciler would publish the advertise address as the
		// kubernetes Service's endpoint, and refuses loopback ones.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(cp.port),
		"--etcd-servers=" + etcdURL,
		"--cert-dir=" + file("certs"),
		"--tls-cert-file=" + file(servingCert),
		"--tls-private-key-file=" + file(servingKey),
		"--token-auth-file=" + file(tokenAuthFile),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + file(saKeyFile),
		"--service-account-signing-key-file=" + file(saKeyFile),
		"--service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/112", // dual stack, so Services may ask for both families
		"--allow-privileged=true",
		// Pods would wait for their namespace's "default" ServiceAccount,
		// which only the controller-manager creates.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	}
}

// StopAPIServer stops kube-apiserver and leaves etcd, and so every object,
// in place. Clients see the server gone until StartAPIServer.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.apiServer == nil {
		return nil
	}
	if err := cp.apiServer.stop(); err != nil {
		return fmt.Errorf("kubeapi: %w", err)
	}
	cp.apiServer = nil
	return nil
}

// StartAPIServer starts kube-apiserver on the port it had before, with the
// same etcd and credentials, and waits until it is ready. Starting a
// running server does nothing.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.startAPIServer(ctx); err != nil {
		return fmt.Errorf("kubeapi: %w", err)
	}
	return nil
}

// startAPIServer is StartAPIServer with cp.mu held.
func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	if cp.closed {
		return errors.New("start kube-apiserver: control plane closed")
	}
	if cp.apiServer != nil {
		return nil
	}
	client, err := cp.probeClient()
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	p, err := startProcess("kube-apiserver", filepath.Join(cp.dir, "kube-apiserver.log"), cp.args)
	if err != nil {
		return err
	}
	err = waitFor(ctx, p, apiServerTimeout, func(ctx context.Context) error {
		return get(ctx, client, cp.URL()+"/readyz", cp.creds.token)
	})
	if err != nil {
		return errors.Join(err, p.stop())
	}
	cp.apiServer = p
	return nil
}

// Close stops kube-apiserver and etcd and removes Dir. It is idempotent.
func (cp *ControlPlane) Close() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.closed {
		return nil
	}
	cp.closed = true
	var errs []error
	for _, p := range []*process{cp.apiServer, cp.etcd} { // clients first
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	cp.apiServer = nil
	if err := errors.Join(errs...); err != nil {
		// Keep Dir: a process we could not stop may still use it.
		return fmt.Errorf("kubeapi: close: %w", err)
	}
	if err := os.RemoveAll(cp.dir); err != nil {
		return fmt.Errorf("kubeapi: close: %w", err)
	}
	return nil
}

// Port is kube-apiserver's secure port on 127.0.0.1.
func (cp *ControlPlane) Port() int { return cp.port }

// Addr is kube-apiserver's address, 127.0.0.1:Port: the target for Forward.
func (cp *ControlPlane) Addr() string { return loopback(cp.port) }

// URL is kube-apiserver's base URL, https://127.0.0.1:Port.
func (cp *ControlPlane) URL() string { return "https://" + cp.Addr() }

// CACert is the PEM certificate of the CA that signed the serving
// certificate.
func (cp *ControlPlane) CACert() []byte { return append([]byte(nil), cp.creds.caPEM...) }

// Dir is the directory holding the credentials, etcd's data and the logs.
func (cp *ControlPlane) Dir() string { return cp.dir }

// Admin returns a new client config for a user in system:masters, which
// RBAC lets do anything.
func (cp *ControlPlane) Admin() *rest.Config {
	return &rest.Config{
		Host:            cp.URL(),
		BearerToken:     cp.creds.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CACert()},
	}
}

// LogTails returns the last lines lines of each process's log, for a
// failed test's report.
func (cp *ControlPlane) LogTails(lines int) string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out string
	for _, p := range []*process{cp.etcd, cp.apiServer} {
		if p != nil {
			out += fmt.Sprintf("--- %s (%s)\n%s\n", p.name, p.logPath, p.tail(lines))
		}
	}
	return out
}

// probeClient trusts the control plane's CA, for readiness probes.
func (cp *ControlPlane) probeClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cp.creds.caPEM) {
		return nil, errors.New("CA certificate: no PEM certificate")
	}
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// get succeeds when url answers 200.
func get(ctx context.Context, client *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// waitFor calls check until it succeeds, p exits, timeout passes or ctx
// ends.
func waitFor(ctx context.Context, p *process, timeout time.Duration, check func(context.Context) error) error {
	err := testnet.WaitFor(ctx, timeout, func(ctx context.Context) error {
		if err := p.exited(); err != nil {
			return testnet.Final(err)
		}
		return check(ctx)
	})
	if err != nil && p.exited() == nil {
		return fmt.Errorf("%s not ready: %w; log %s:\n%s", p.name, err, p.logPath, p.tail(20))
	}
	return err
}
