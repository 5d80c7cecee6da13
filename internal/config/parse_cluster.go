package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultClusterPrefix is where a cluster keeps its keys in etcd.
const DefaultClusterPrefix = "/vipd"

func (d *decoder) cluster(dst **Cluster) field {
	return func(v *yaml.Node, path string) {
		c := &Cluster{MemberTTL: 10 * time.Second, Etcd: Etcd{Prefix: DefaultClusterPrefix}}
		*dst = c
		set := d.object(v, path, map[string]field{
			"node_name":  text(d, &c.NodeName, "a node name", orUnset(parseDNSSubdomain)),
			"labels":     d.labels(&c.Labels),
			"member_ttl": text(d, &c.MemberTTL, "a duration from 2s to 5m", durationIn(2*time.Second, 5*time.Minute)),
			"etcd":       d.etcd(&c.Etcd),
		})
		d.require(path, set, "etcd")
	}
}

func (d *decoder) etcd(e *Etcd) field {
	return func(v *yaml.Node, path string) {
		set := d.object(v, path, map[string]field{
			"endpoints":     listOf(d, &e.Endpoints, func(dst *string) field { return text(d, dst, "an etcd client URL", parseEtcdEndpoint) }),
			"prefix":        text(d, &e.Prefix, "a key prefix like /vipd", parseClusterPrefix),
			"ca_file":       text(d, &e.CAFile, "an absolute path", parseAbsPath),
			"cert_file":     text(d, &e.CertFile, "an absolute path", parseAbsPath),
			"key_file":      text(d, &e.KeyFile, "an absolute path", parseAbsPath),
			"username":      text(d, &e.Username, "a user name", parseEtcdUser),
			"password_file": text(d, &e.PasswordFile, "an absolute path", parseAbsPath),
		})
		d.require(path, set, "endpoints")
		if set.ok("endpoints") && len(e.Endpoints) == 0 {
			d.errorf(joinPath(path, "endpoints"), "want at least one etcd client URL")
		}
		if set.has("cert_file") != set.has("key_file") {
			d.errorf(joinPath(path, "cert_file"), "cert_file and key_file go together")
		}
		if set.has("username") != set.has("password_file") {
			d.errorf(joinPath(path, "username"), "username and password_file go together")
		}
	}
}

// labels decodes a mapping of Kubernetes-style labels: a load balancer's
// nodes selector matches them as key=value.
func (d *decoder) labels(dst *map[string]string) field {
	return func(v *yaml.Node, path string) {
		v = resolve(v)
		if v.Kind != yaml.MappingNode {
			d.errorf(path, "want a mapping of label: value, got %s", describe(v))
			return
		}
		m := make(map[string]string)
		for _, kv := range d.pairs(v, path) {
			key := kv.key.Value
			p := joinPath(path, key)
			d.lines[p] = kv.key.Line
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				d.errorf(p, "want a label name like rack or example.com/zone, got %q: %s", key, errs[0])
				continue
			}
			value, ok := d.scalar(kv.value, p, "a label value")
			if !ok {
				continue
			}
			if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
				d.errorf(p, "want a label value, got %q: %s", value, errs[0])
				continue
			}
			m[key] = value
		}
		*dst = m
	}
}

// parseEtcdEndpoint accepts what the etcd client dials: http or https,
// a host and a port, nothing else.
func parseEtcdEndpoint(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("want a URL like http://10.0.0.1:2379, got %q: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("want an http:// or https:// URL, got %q", s)
	case u.Hostname() == "" || u.Port() == "":
		return "", fmt.Errorf("want a host and a port, like http://10.0.0.1:2379, got %q", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("want only a scheme, a host and a port (credentials go in username and password_file), got %q", s)
	}
	return s, nil
}

// parseClusterPrefix keeps clusters that share an etcd apart: one prefix
// must not be a key under another's.
func parseClusterPrefix(s string) (string, error) {
	if !strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//") || strings.ContainsFunc(s, isControlOrSpace) {
		return "", fmt.Errorf("want a prefix like /vipd or /prod/vipd (starts with '/', no trailing '/', no spaces), got %q", s)
	}
	return s, nil
}

func parseEtcdUser(s string) (string, error) {
	if s == "" || strings.ContainsFunc(s, isControlOrSpace) || strings.Contains(s, ":") {
		return "", fmt.Errorf("want an etcd user name (no spaces or ':'), got %q", s)
	}
	return s, nil
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }
