package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Load reads and parses the config file at path, then reads the files it
// points at (password_file). Errors in the config come back as an *Errors
// whose File is path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	cfg, lines, err := parse(data)
	if err == nil {
		err = readPasswords(cfg, lines)
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

// readPasswords fills in Password for every peer with a password_file.
func readPasswords(cfg *Config, lines map[string]int) error {
	var errs []*FieldError
	for i := range cfg.BGP.Peers {
		p := &cfg.BGP.Peers[i]
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
	data, err := os.ReadFile(file)
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
