package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Hash identifies c, so a reload can tell whether anything changed and the
// running config can be named in logs and metrics. It is computed from the
// Config value itself, so every field reaches it without a second
// description of the schema. Secrets marshal redacted: the hash is public,
// and a hash over a password would let anyone guess it offline.
// SameSecrets covers the passwords.
func (c *Config) Hash() (string, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("hash config: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// SameSecrets reports whether c and o have the same peers' passwords and
// BFD keys, including those read from files.
func (c *Config) SameSecrets(o *Config) bool {
	if len(c.BGP.Peers) != len(o.BGP.Peers) {
		return false
	}
	for i := range c.BGP.Peers {
		if c.BGP.Peers[i].Password != o.BGP.Peers[i].Password || c.BGP.Peers[i].BFD.Auth.Key != o.BGP.Peers[i].BFD.Auth.Key {
			return false
		}
	}
	return true
}

// Service returns the service called name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}
