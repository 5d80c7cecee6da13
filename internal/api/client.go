package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client talks to a daemon's API over its control socket or over TCP.
type Client struct {
	base  string // URL prefix of every request
	where string // for errors: "control socket /run/vipd/vipd.sock"
	token string // bearer token; "" on the socket
	http  *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{base: "http://vipd", where: "control socket " + socket,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// NewRemoteClient returns a client for the API's TCP listener at base
// ("https://host:10001" or "http://…"), which sends the token in tokenFile
// with every request, never through an HTTP proxy. caFile, if set, holds
// the PEM certificates of the CAs to trust instead of the system's (https
// only).
func NewRemoteClient(base, tokenFile, caFile string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api %q: want http://host:port or https://host:port", base)
	}
	token, err := ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the token goes to the daemon only
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("api %q: a CA file needs an https:// URL", base)
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates in it", caFile)
		}
		tr.TLSClientConfig.RootCAs = roots
	}
	return &Client{base: strings.TrimSuffix(base, "/"), where: "api " + base, token: string(token),
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Status fetches GET /status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	_, err := c.do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// Reload asks the daemon to re-read its config file (POST /reload).
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	_, err := c.do(ctx, http.MethodPost, "/reload", nil, &res)
	return res, err
}

// Drain drains (or undrains) a service.
func (c *Client) Drain(ctx context.Context, service string, drained bool) error {
	verb := "undrain"
	if drained {
		verb = "drain"
	}
	_, err := c.do(ctx, http.MethodPost, "/services/"+url.PathEscape(service)+"/"+verb, nil, &DrainResult{})
	return err
}

// CreateLoadBalancer creates a load balancer (POST /loadbalancer).
// created is false when one of that name and spec existed already.
func (c *Client) CreateLoadBalancer(ctx context.Context, req LoadBalancerRequest) (l LoadBalancer, created bool, err error) {
	code, err := c.do(ctx, http.MethodPost, "/loadbalancer", req, &l)
	return l, code == http.StatusCreated, err
}

// Cluster fetches the cluster store's state (GET /cluster).
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	_, err := c.do(ctx, http.MethodGet, "/cluster", nil, &st)
	return st, err
}

// LoadBalancers lists every load balancer (GET /loadbalancers).
func (c *Client) LoadBalancers(ctx context.Context) ([]LoadBalancer, error) {
	var list []LoadBalancer
	_, err := c.do(ctx, http.MethodGet, "/loadbalancers", nil, &list)
	return list, err
}

// LoadBalancer fetches one load balancer by UUID.
func (c *Client) LoadBalancer(ctx context.Context, uuid string) (LoadBalancer, error) {
	var l LoadBalancer
	_, err := c.do(ctx, http.MethodGet, lbPath(uuid), nil, &l)
	return l, err
}

// DeleteLoadBalancer deletes a load balancer by UUID.
func (c *Client) DeleteLoadBalancer(ctx context.Context, uuid string) error {
	_, err := c.do(ctx, http.MethodDelete, lbPath(uuid), nil, &Deleted{})
	return err
}

// AddBackend adds a backend to a load balancer and returns the result.
func (c *Client) AddBackend(ctx context.Context, lbUUID string, req BackendRequest) (LoadBalancer, error) {
	var l LoadBalancer
	_, err := c.do(ctx, http.MethodPost, lbPath(lbUUID)+"/backend", req, &l)
	return l, err
}

// RemoveBackend removes a backend from a load balancer and returns the
// result.
func (c *Client) RemoveBackend(ctx context.Context, lbUUID, backendUUID string) (LoadBalancer, error) {
	var l LoadBalancer
	_, err := c.do(ctx, http.MethodDelete, lbPath(lbUUID)+"/backend/"+url.PathEscape(backendUUID), nil, &l)
	return l, err
}

func lbPath(uuid string) string { return "/loadbalancer/" + url.PathEscape(uuid) }

// do sends in (if not nil) as the JSON body and decodes a success reply
// into out. It returns the reply's status code; an error reply comes back
// as an *HTTPError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w (is vipd running?)", c.where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return resp.StatusCode, &HTTPError{Status: resp.StatusCode, Message: e.Message, Field: e.Field, Details: e.Errors}
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return resp.StatusCode, nil
}
