package kubeapi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// saTokenLifetime outlasts any test and a day of lab.
const saTokenLifetime = 24 * time.Hour

// ServiceAccountKubeconfig returns a kubeconfig for service account
// namespace/name, creating both if missing, with a token from the
// TokenRequest API and the control plane's CA. server is the API server's
// URL as the client sees it (https://127.0.0.1:Port through a Forward).
// What the account may do is up to the caller's RBAC objects.
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, namespace, name, server string) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(cp.Admin())
	if err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kubeapi: namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	_, err = cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kubeapi: service account %s/%s: %w", namespace, name, err)
	}
	seconds := int64(saTokenLifetime / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubeapi: token for %s/%s: %w", namespace, name, err)
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	data, err := kubeconfig(server, cp.creds.caPEM, user, tr.Status.Token, namespace)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: kubeconfig for %s/%s: %w", namespace, name, err)
	}
	return data, nil
}

// AdminKubeconfig is the path of a kubeconfig file for the admin Admin
// returns, for kubectl and other programs on the host.
func (cp *ControlPlane) AdminKubeconfig() string { return filepath.Join(cp.dir, kubeconfigFile) }

func (cp *ControlPlane) writeAdminKubeconfig() error {
	data, err := kubeconfig(cp.URL(), cp.creds.caPEM, adminUser, cp.creds.token, "")
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	return os.WriteFile(cp.AdminKubeconfig(), data, 0o600)
}

// kubeconfig renders a kubeconfig with one cluster, user and context.
func kubeconfig(server string, caPEM []byte, user, token, namespace string) ([]byte, error) {
	const name = "vipd-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

// Kubectl runs the built kubectl as the admin and returns its stdout; the
// error carries its stderr.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	// kubectl caches discovery under $HOME unless told otherwise.
	args = append([]string{"--kubeconfig=" + cp.AdminKubeconfig(), "--cache-dir=" + filepath.Join(cp.dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(cp.assets, "kubectl"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args[2:], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Apply runs `kubectl apply -f path` as the admin: path is a manifest file
// or a directory of them (-k for a directory with a kustomization.yaml,
// as a user would apply it). With dryRun the server validates, defaults and
// admits every object (--dry-run=server) but stores nothing. It returns
// kubectl's stdout, one line per object.
func (cp *ControlPlane) Apply(ctx context.Context, path string, dryRun bool) (string, error) {
	args := []string{"apply", "-f", path}
	if _, err := os.Stat(filepath.Join(path, "kustomization.yaml")); err == nil {
		args = []string{"apply", "-k", path}
	}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	return cp.Kubectl(ctx, args...)
}
