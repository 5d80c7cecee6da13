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

// readFiles fills in Password for every peer with a password_file, and
// checks the API token file.
func readFiles(cfg *Config, lines map[string]int) error {
	var errs []*FieldError
	if file := cfg.API.TokenFile; file != "" {
		if _, err := ReadToken(file); err != nil {
			const path = "api.token_file"
			errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
		}
	}
	for i := range cfg.BGP.Peers {
		p := &cfg.BGP.Peers[i]
		if a := &p.BFD.Auth; a.KeyFile != "" {
			key, err := readBFDKey(a.KeyFile, a.Type)
			if err != nil {
				path := fmt.Sprintf("bgp.peers[%d].bfd.auth.key_file", i)
				errs = append(errs, &FieldError{Path: path, Line: lines[path], Msg: err.Error(), Err: err})
			}
			a.Key = Secret(key)
		}
		if p.PasswordFile == "" {
			continue
		}
		pw, err := readPassword(p.PasswordFile)
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

// readPassword reads a TCP-MD5 key from file, without the trailing newline
// editors add.
func readPassword(file string) (string, error) {
	data, err := ReadFile(file, maxSecretSize)
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(string(data), "\r\n")
	switch {
	case pw == "":
		return "", fmt.Errorf("%s is empty", file)
	case len(pw) > maxMD5KeyLen:
		return "", fmt.Errorf("%s holds %d bytes, but a TCP-MD5 key has at most %d", file, len(pw), maxMD5KeyLen)
	}
	return pw, nil
}

// readBFDKey reads a BFD authentication key from file, without the
// trailing newline editors add.
func readBFDKey(file string, t BFDAuthType) (string, error) {
	data, err := ReadFile(file, maxSecretSize)
	if err != nil {
		return "", err
	}
	key := strings.TrimRight(string(data), "\r\n")
	switch {
	case key == "":
		return "", fmt.Errorf("%s is empty", file)
	case len(key) > t.MaxKeyLen():
		return "", fmt.Errorf("%s holds %d bytes, but a %s key has at most %d", file, len(key), t, t.MaxKeyLen())
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
