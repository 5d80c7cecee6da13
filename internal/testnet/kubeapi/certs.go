package kubeapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity outlives any test or lab run by far.
const certValidity = 7 * 24 * time.Hour

// Files the control plane's credentials live in, inside Options.Dir.
const (
	caCertFile     = "ca.crt"
	servingCert    = "apiserver.crt"
	servingKey     = "apiserver.key"
	saKeyFile      = "sa.key"
	tokenAuthFile  = "tokens.csv"
	adminUser      = "vipd-test-admin"
	kubeconfigFile = "admin.kubeconfig"
)

// credentials is what Start generates: a CA, the API server's serving
// certificate signed by it, and the admin's bearer token.
type credentials struct {
	caPEM []byte
	token string
}

// writeCredentials generates fresh credentials and writes them, with the
// service-account signing key and the static token file, into dir.
func writeCredentials(dir string) (credentials, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "vipd-test-ca"},
		NotBefore:             now.Add(-time.Hour), // backdated, so no clock rounding makes it not yet valid
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return credentials{}, fmt.Errorf("ca: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return credentials{}, fmt.Errorf("ca: %w", err)
	}
	serveKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, err
	}
	// Clients reach the server as 127.0.0.1 or localhost, on the host or
	// through a forwarder inside a namespace.
	serveDER, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(certValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}, caCert, &serveKey.PublicKey, caKey)
	if err != nil {
		return credentials{}, fmt.Errorf("serving certificate: %w", err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, err
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return credentials{}, err
	}
	c := credentials{caPEM: pemBlock("CERTIFICATE", caDER), token: hex.EncodeToString(token)}
	serveKeyPEM, err := keyPEM(serveKey)
	if err != nil {
		return credentials{}, err
	}
	saKeyPEM, err := keyPEM(saKey)
	if err != nil {
		return credentials{}, err
	}
	files := map[string][]byte{
		caCertFile:  c.caPEM,
		servingCert: pemBlock("CERTIFICATE", serveDER),
		servingKey:  serveKeyPEM,
		// kube-apiserver reads the public half from the private key file.
		saKeyFile: saKeyPEM,
		// token,user,uid,"groups": system:masters passes every RBAC check.
		tokenAuthFile: fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", c.token, adminUser, adminUser),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return credentials{}, err
		}
	}
	return c, nil
}

// sign makes a certificate for pub from tmpl, signed by parent's key.
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
