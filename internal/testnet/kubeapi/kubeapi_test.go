// An external test, so that it can use worldtest, which imports kubeapi.
package kubeapi_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/kubeapi"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// settle bounds waiting for RBAC caches and restarts on a busy machine.
const settle = 30 * time.Second

// TestControlPlane starts one control plane and checks, in order, that
// RBAC is enforced for a service account's kubeconfig, that Apply
// validates against the server, and that a restarted API server keeps its
// port and its objects.
func TestControlPlane(t *testing.T) {
	cp := worldtest.KubeAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := clientset(t, cp.Admin())

	t.Run("RBAC", func(t *testing.T) {
		sa := serviceAccountClient(ctx, t, cp, admin, cp.URL(), nil)
		err := testnet.WaitFor(ctx, settle, func(ctx context.Context) error {
			_, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("service account lists services: %v", err)
		}
		_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("service account lists secrets: got error %v, want Forbidden", err)
		}
	})

	t.Run("Apply", func(t *testing.T) {
		dir := t.TempDir()
		good := filepath.Join(dir, "good.yaml")
		write(t, good, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: default}\ndata: {k: v}\n")
		out, err := cp.Apply(ctx, good, true)
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if !strings.Contains(out, "server dry run") {
			t.Errorf("dry run: output %q does not say server dry run", out)
		}
		if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "applied", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("after dry run: get: %v, want NotFound", err)
		}
		// Only the server knows ports stop at 65535.
		bad := filepath.Join(dir, "bad.yaml")
		write(t, bad, "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: default}\nspec: {ports: [{port: 70000}]}\n")
		if _, err := cp.Apply(ctx, bad, true); err == nil || !strings.Contains(err.Error(), "70000") {
			t.Errorf("dry run of an invalid Service: got %v, want an error about port 70000", err)
		}
		if _, err := cp.Apply(ctx, good, false); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "applied", metav1.GetOptions{}); err != nil {
			t.Fatalf("after apply: get: %v", err)
		}
	})

	t.Run("Restart", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"}}
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		port := cp.Port()
		if err := cp.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err == nil {
			t.Fatal("get with the API server stopped: no error")
		}
		if err := cp.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		if cp.Port() != port {
			t.Errorf("port after restart: %d, want %d", cp.Port(), port)
		}
		// The admin client was made before the stop: it reconnects.
		if _, err := admin.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{}); err != nil {
			t.Fatalf("get after restart: %v", err)
		}
	})
}

// TestForwardFromNamespace reaches the API server from inside a node's
// network namespace, where the host's loopback does not exist, through
// Forward, and checks that an outage of the API server shows through it
// and that it carries on once the server is back.
func TestForwardFromNamespace(t *testing.T) {
	cp := worldtest.KubeAPI(t)
	w := worldtest.New(t, testnet.Spec{Nodes: []testnet.NodeSpec{{Name: "n1", Address: netip.MustParseAddr("10.255.255.11")}}})
	n1 := w.Node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if conn, err := n1.DialContext(ctx, "tcp", cp.Addr()); err == nil {
		conn.Close()
		t.Fatalf("dial %s inside n1 without a forward: connected", cp.Addr())
	}
	l, err := n1.Listen("tcp", cp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fwdCtx, stopForward := context.WithCancel(ctx)
	fwdDone := make(chan error, 1)
	go func() { fwdDone <- kubeapi.Forward(fwdCtx, l, cp.Addr()) }()
	defer func() {
		stopForward()
		if err := <-fwdDone; err != nil {
			t.Errorf("Forward: %v", err)
		}
	}()

	// A client as vipd in n1 would be: it dials from inside the namespace.
	sa := serviceAccountClient(ctx, t, cp, clientset(t, cp.Admin()), cp.URL(), func(c *rest.Config) {
		c.Dial = n1.DialContext
		c.Timeout = 5 * time.Second
	})
	list := func(ctx context.Context) error {
		_, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		return err
	}
	if err := testnet.WaitFor(ctx, settle, list); err != nil {
		t.Fatalf("list services through the forward: %v", err)
	}
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := list(ctx); err == nil {
		t.Fatal("list services through the forward with the API server stopped: no error")
	}
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testnet.WaitFor(ctx, settle, list); err != nil {
		t.Fatalf("list services through the forward after the restart: %v", err)
	}
}

// serviceAccountClient makes service account vipd-system/vipd, allowed
// to get and list Services cluster-wide and nothing else, and returns a
// client built from its kubeconfig for server, changed by edit if not nil.
func serviceAccountClient(ctx context.Context, t *testing.T, cp *kubeapi.ControlPlane, admin kubernetes.Interface, server string, edit func(*rest.Config)) kubernetes.Interface {
	t.Helper()
	const ns, name = "vipd-system", "vipd"
	kubeconfig, err := cp.ServiceAccountKubeconfig(ctx, ns, name, server)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "vipd-services"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vipd-services"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("service account kubeconfig: %v\n%s", err, kubeconfig)
	}
	if cfg.Host != server {
		t.Errorf("service account kubeconfig: server %q, want %q", cfg.Host, server)
	}
	if edit != nil {
		edit(cfg)
	}
	return clientset(t, cfg)
}

func clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
