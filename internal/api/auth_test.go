package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret-T0ken"

// writeFile writes data to a new file in a temp dir and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTCP serves b on a loopback TCP listener (TLS with cert and key)
// with testToken and returns the listener's address.
func startTCP(t *testing.T, b Backend, cert, key string) string {
	t.Helper()
	ln, err := ListenTCP("127.0.0.1:0", cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(b, slog.New(slog.DiscardHandler)).ServeTCP(ctx, ln, []byte(testToken)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestTCPNeedsToken(t *testing.T) {
	addr := startTCP(t, newFakeLBs(), "", "")
	tests := []struct {
		name, method, path, auth string
		want                     int
		wantChallenge            string // WWW-Authenticate, on 401
	}{
		{"no token", "GET", "/status", "", 401, `Bearer realm="vipd"`},
		{"wrong token", "GET", "/status", "Bearer nope", 401, `Bearer realm="vipd", error="invalid_token"`},
		{"token as a prefix", "GET", "/status", "Bearer " + testToken + "x", 401, `Bearer realm="vipd", error="invalid_token"`},
		{"token prefix", "GET", "/status", "Bearer " + testToken[:4], 401, `Bearer realm="vipd", error="invalid_token"`},
		{"basic auth", "GET", "/status", "Basic " + testToken, 401, `Bearer realm="vipd"`},
		{"empty bearer", "GET", "/status", "Bearer ", 401, `Bearer realm="vipd"`},
		{"no token for a write", "DELETE", "/loadbalancer/lb-1", "", 401, `Bearer realm="vipd"`},
		{"no token for an unknown path", "GET", "/nope", "", 401, `Bearer realm="vipd"`},
		{"no token, but healthz", "GET", "/healthz", "", 200, ""},
		{"token", "GET", "/status", "Bearer " + testToken, 200, ""},
		{"token, scheme in lower case", "GET", "/loadbalancers", "bearer " + testToken, 200, ""},
		{"token for a write", "DELETE", "/loadbalancer/lb-1", "Bearer " + testToken, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantChallenge)
			}
			if tt.want == http.StatusUnauthorized && (!strings.Contains(string(body), `"error"`) || strings.Contains(string(body), testToken)) {
				t.Errorf("401 body %s: want a JSON error that does not echo the token", body)
			}
		})
	}
}

func TestRemoteClient(t *testing.T) {
	addr := startTCP(t, newFakeLBs(), "", "")
	c, err := NewRemoteClient("http://"+addr+"/", writeFile(t, "token", []byte("\n"+testToken+"\n")), "")
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c.LoadBalancers(context.Background()); err != nil || len(list) != 1 {
		t.Fatalf("list with the token: %+v %v", list, err)
	}
	c, err = NewRemoteClient("http://"+addr, writeFile(t, "token", []byte("wrong")), "")
	if err != nil {
		t.Fatal(err)
	}
	var he *HTTPError
	if _, err := c.Status(context.Background()); !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Errorf("status with a wrong token: %v, want 401", err)
	}
	for _, bad := range []string{"", "host:10001", "unix:///run/vipd.sock", "ftp://host"} {
		if _, err := NewRemoteClient(bad, writeFile(t, "token", []byte("x")), ""); err == nil {
			t.Errorf("NewRemoteClient(%q) accepted", bad)
		}
	}
	if _, err := NewRemoteClient("http://"+addr, writeFile(t, "token", []byte("x")), writeFile(t, "ca.pem", nil)); err == nil {
		t.Error("NewRemoteClient accepted a CA file for http://")
	}
}

func TestTLS(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	cert, key := writeFile(t, "cert.pem", certPEM), writeFile(t, "key.pem", keyPEM)
	addr := startTCP(t, newFakeLBs(), cert, key)
	token := writeFile(t, "token", []byte(testToken))
	ctx := context.Background()

	c, err := NewRemoteClient("https://"+addr, token, cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status over TLS with the CA: %v", err)
	}
	// The system's CAs do not know the certificate.
	c, err = NewRemoteClient("https://"+addr, token, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("status without the CA: %v, want a certificate error", err)
	}
	// Plain HTTP and TLS 1.1 find no server.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP on the TLS listener answered 200")
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("TLS 1.1 handshake succeeded, want TLS 1.2 minimum")
	}
}

// selfSigned returns a PEM certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vipd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func TestListenTCPNeedsCertAndKey(t *testing.T) {
	certPEM, _ := selfSigned(t)
	cert := writeFile(t, "cert.pem", certPEM)
	if _, err := ListenTCP("127.0.0.1:0", cert, ""); err == nil {
		t.Error("ListenTCP with a certificate but no key succeeded")
	}
	if _, err := ListenTCP("127.0.0.1:0", cert, cert); err == nil {
		t.Error("ListenTCP with a certificate as the key succeeded")
	}
}

func TestServeTCPNeedsToken(t *testing.T) {
	ln, err := ListenTCP("127.0.0.1:0", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := NewServer(newFakeLBs(), slog.New(slog.DiscardHandler)).ServeTCP(context.Background(), ln, nil); err == nil {
		t.Fatal("ServeTCP with no token served")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("ServeTCP without a token left its listener open")
	}
}

func TestReadToken(t *testing.T) {
	tests := []struct {
		name, content, want, wantErr string
	}{
		{"plain", "abc", "abc", ""},
		{"trimmed", "  abc\n\n", "abc", ""},
		{"empty", "", "", "empty"},
		{"blank", " \n\t", "", "empty"},
		{"inner space", "ab c", "", "printable ASCII"},
		{"non-ASCII", "abcé", "", "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(writeFile(t, "token", []byte(tt.content)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tt.content)) && strings.TrimSpace(tt.content) != "" {
					t.Errorf("error %q quotes the token", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("ReadToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadToken(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}
