package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Load reads and parses the config file at path, then reads the files it
// points at (password_file, api.token_file), so that check-config finds a
// bad one and vipd run stops before it starts anything. Errors in the
// config come back as an *Errors whose File is path.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	cfg, lines, err := parse(data)
	if err == nil {
		err = readFiles(cfg, lines)
	}
	if err != nil {
		var errs *Errors
		if errors.As(err, &errs) {
			errs.File = path
		}
		return nil, err
	}
	return cfg, nil
}

// readFiles fills in Password for every peer with a password_file and
// for the cluster's etcd user, and checks the API token file.
func readFiles(cfg *Config, lines map[string]int) error {
	var errs []*FieldError
	if file := cfg.API.TokenFile; file != "" {
		if _, err := ReadToken(file); err != nil {
			const path = "api.token_file"
			errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
		}
	}
	if c := cfg.Cluster; c != nil && c.Etcd.PasswordFile != "" {
		pw, err := readSecret(c.Etcd.PasswordFile, "etcd password", maxEtcdPassword)
		if err != nil {
			const path = "cluster.etcd.password_file"
			errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
		}
		c.Etcd.Password = Secret(pw)
	}
	for i := range cfg.BGP.Peers {
		p := &cfg.BGP.Peers[i]
		if a := &p.BFD.Auth; a.KeyFile != "" {
			key, err := readSecret(a.KeyFile, string(a.Type), a.Type.MaxKeyLen())
			if err != nil {
				path := fmt.Sprintf("bgp.peers[%d].bfd.auth.key_file", i)
				errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
			}
			a.Key = Secret(key)
		}
		if p.PasswordFile == "" {
			continue
		}
		pw, err := readSecret(p.PasswordFile, "TCP-MD5", maxMD5KeyLen)
		if err != nil {
			path := fmt.Sprintf("bgp.peers[%d].password_file", i)
			errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
			continue
		}
		p.Password = Secret(pw)
	}
	if errs != nil {
		return &Errors{List: errs}
	}
	return nil
}

// maxEtcdPassword is generous: etcd sets no limit of its own.
const maxEtcdPassword = 1024

// readSecret reads a key (what, at most max bytes) from file, without the
// trailing newline editors add.
func readSecret(file, what string, max int) (string, error) {
	data, err := ReadFile(file, maxSecretSize)
	if err != nil {
		return "", err
	}
	key := strings.TrimRight(string(data), "\r\n")
	switch {
	case key == "":
		return "", fmt.Errorf("%s is empty", file)
	case len(key) > max:
		return "", fmt.Errorf("%s holds %d bytes, but a %s key has at most %d", file, len(key), what, max)
	}
	return key, nil
}

// ReadToken reads a bearer token (api.token_file), without the
// surrounding whitespace. An empty token, or one with characters a client
// cannot send in a header (spaces, controls, non-ASCII), is an error. The
// error never quotes the file's content.
func ReadToken(file string) ([]byte, error) {
	data, err := ReadFile(file, maxSecretSize)
	if err != nil {
		return nil, err
	}
	token := bytes.TrimSpace(data)
	if len(token) == 0 {
		return nil, fmt.Errorf("%s is empty", file)
	}
	for _, c := range token {
		if c <= ' ' || c > '~' {
			return nil, fmt.Errorf("%s: the token must be printable ASCII without spaces", file)
		}
	}
	return token, nil
}
