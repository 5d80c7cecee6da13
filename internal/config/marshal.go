package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Marshal writes c as normalized YAML: the same keys as the config file,
// every default explicit, in a fixed order. Parse reads it back into an
// equal Config. A peer's password is written as written: password_file
// if it came from one (not the file's content), else password in clear.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(toFile(c)); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// Hash identifies c without its secrets, so it may be logged and exported:
// a hash over a password would let anyone guess the password offline.
// Equal configs have equal hashes; SameSecrets covers the passwords.
func (c *Config) Hash() (string, error) {
	redacted := *c
	redacted.BGP.Peers = make([]Peer, len(c.BGP.Peers))
	for i, p := range c.BGP.Peers {
		if p.Password != "" {
			p.Password = "redacted"
		}
		redacted.BGP.Peers[i] = p
	}
	data, err := redacted.Marshal()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// SameSecrets reports whether c and o have the same peers' passwords,
// including those read from password_file.
func (c *Config) SameSecrets(o *Config) bool {
	if len(c.BGP.Peers) != len(o.BGP.Peers) {
		return false
	}
	for i := range c.BGP.Peers {
		if c.BGP.Peers[i].Password != o.BGP.Peers[i].Password {
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

// The file* types mirror the YAML layout for Marshal. Optional values
// with no default are left out when unset; everything else is written.
type fileConfig struct {
	BGP      fileBGP       `yaml:"bgp"`
	Services []fileService `yaml:"services"`
	Pools    []filePool    `yaml:"pools"`
	StateDir string        `yaml:"state_dir"`
	API      fileAPI       `yaml:"api"`
	Metrics  fileMetrics   `yaml:"metrics"`
}

type fileBGP struct {
	ASN              uint32     `yaml:"asn"`
	RouterID         string     `yaml:"router_id,omitempty"`
	ListenPort       int32      `yaml:"listen_port"`
	AllowedPrefixes  []string   `yaml:"allowed_prefixes"`
	Communities      []string   `yaml:"communities"`
	LargeCommunities []string   `yaml:"large_communities"`
	ShutdownGrace    string     `yaml:"shutdown_grace"`
	GracefulRestart  bool       `yaml:"graceful_restart"`
	Peers            []filePeer `yaml:"peers"`
}

type filePeer struct {
	Name          string   `yaml:"name"`
	Address       string   `yaml:"address"`
	ASN           uint32   `yaml:"asn"`
	Port          uint16   `yaml:"port"`
	Password      string   `yaml:"password,omitempty"`
	PasswordFile  string   `yaml:"password_file,omitempty"`
	Multihop      bool     `yaml:"multihop"`
	TTL           uint8    `yaml:"ttl,omitempty"`
	SourceAddress string   `yaml:"source_address,omitempty"`
	HoldTime      string   `yaml:"hold_time"`
	Families      []Family `yaml:"families"`
	IPv6NextHop   string   `yaml:"ipv6_next_hop,omitempty"`
	BFD           fileBFD  `yaml:"bfd"`
}

type fileBFD struct {
	Enabled    bool   `yaml:"enabled"`
	Multihop   bool   `yaml:"multihop"`
	MinTx      string `yaml:"min_tx"`
	MinRx      string `yaml:"min_rx"`
	Multiplier uint8  `yaml:"multiplier"`
	MinTTL     uint8  `yaml:"min_ttl,omitempty"` // multihop only
}

type fileService struct {
	Name             string      `yaml:"name"`
	VIPs             []string    `yaml:"vips"`
	Interface        string      `yaml:"interface"`
	Bind             bool        `yaml:"bind"`
	Checks           []fileCheck `yaml:"checks"`
	Interval         string      `yaml:"interval"`
	FastInterval     string      `yaml:"fast_interval"`
	Timeout          string      `yaml:"timeout"`
	Rise             int         `yaml:"rise"`
	Fall             int         `yaml:"fall"`
	OnDown           OnDown      `yaml:"on_down"`
	MED              uint32      `yaml:"med"`
	DownMED          uint32      `yaml:"down_med"`
	Prepend          int         `yaml:"prepend"`
	DownPrepend      int         `yaml:"down_prepend"`
	Communities      []string    `yaml:"communities"`
	LargeCommunities []string    `yaml:"large_communities"`
	MaintenanceFile  string      `yaml:"maintenance_file,omitempty"`
	Ports            []uint16    `yaml:"ports,omitempty"`
}

type fileCheck struct {
	HTTP    *fileHTTP    `yaml:"http,omitempty"`
	TCP     *fileTCP     `yaml:"tcp,omitempty"`
	Exec    *fileExec    `yaml:"exec,omitempty"`
	Listen  *fileListen  `yaml:"listen,omitempty"`
	Process *fileProcess `yaml:"process,omitempty"`
}

type fileListen struct {
	Port    uint16 `yaml:"port"`
	Address string `yaml:"address,omitempty"`
}

type fileProcess struct {
	PIDFile string `yaml:"pid_file,omitempty"`
	Name    string `yaml:"name,omitempty"`
}

type fileTCP struct {
	Address string `yaml:"address"`
}

type fileExec struct {
	Command []string `yaml:"command"`
}

type fileHTTP struct {
	URL          string `yaml:"url"`
	ExpectStatus string `yaml:"expect_status"`
}

type filePool struct {
	Name     string   `yaml:"name"`
	Prefixes []string `yaml:"prefixes"`
}

type fileAPI struct {
	Socket    string `yaml:"socket"`
	Listen    string `yaml:"listen"`
	TokenFile string `yaml:"token_file,omitempty"`
	TLSCert   string `yaml:"tls_cert,omitempty"`
	TLSKey    string `yaml:"tls_key,omitempty"`
}

type fileMetrics struct {
	Listen string `yaml:"listen"` // "" is written: it disables metrics
}

func toFile(c *Config) fileConfig {
	return fileConfig{
		BGP: fileBGP{
			ASN:              c.BGP.ASN,
			RouterID:         addrText(c.BGP.RouterID),
			ListenPort:       c.BGP.ListenPort,
			AllowedPrefixes:  convert(c.BGP.AllowedPrefixes, netip.Prefix.String),
			Communities:      convert(c.BGP.Communities, Community.String),
			LargeCommunities: convert(c.BGP.LargeCommunities, LargeCommunity.String),
			ShutdownGrace:    c.BGP.ShutdownGrace.String(),
			GracefulRestart:  c.BGP.GracefulRestart,
			Peers:            convert(c.BGP.Peers, toFilePeer),
		},
		Services: convert(c.Services, toFileService),
		Pools:    convert(c.Pools, toFilePool),
		StateDir: c.StateDir,
		API:      fileAPI(c.API),
		Metrics:  fileMetrics(c.Metrics),
	}
}

func toFilePeer(p Peer) filePeer {
	f := filePeer{
		Name:          p.Name,
		Address:       p.Address.String(),
		ASN:           p.ASN,
		Port:          p.Port,
		PasswordFile:  p.PasswordFile,
		Multihop:      p.Multihop,
		TTL:           p.TTL,
		SourceAddress: addrText(p.SourceAddress),
		HoldTime:      p.HoldTime.String(),
		Families:      p.Families,
		IPv6NextHop:   addrText(p.IPv6NextHop),
		BFD: fileBFD{
			Enabled:    p.BFD.Enabled,
			Multihop:   p.BFD.Multihop,
			MinTx:      p.BFD.MinTx.String(),
			MinRx:      p.BFD.MinRx.String(),
			Multiplier: p.BFD.Multiplier,
			MinTTL:     p.BFD.MinTTL,
		},
	}
	if p.PasswordFile == "" {
		f.Password = p.Password.Reveal() // Secret.MarshalText would redact it
	}
	return f
}

func toFileService(s Service) fileService {
	return fileService{
		Name:             s.Name,
		VIPs:             convert(s.VIPs, netip.Addr.String),
		Interface:        s.Interface,
		Bind:             s.Bind,
		Checks:           convert(s.Checks, toFileCheck),
		Interval:         s.Interval.String(),
		FastInterval:     s.FastInterval.String(),
		Timeout:          s.Timeout.String(),
		Rise:             s.Rise,
		Fall:             s.Fall,
		OnDown:           s.OnDown,
		MED:              s.MED,
		DownMED:          s.DownMED,
		Prepend:          s.Prepend,
		DownPrepend:      s.DownPrepend,
		Communities:      convert(s.Communities, Community.String),
		LargeCommunities: convert(s.LargeCommunities, LargeCommunity.String),
		MaintenanceFile:  s.MaintenanceFile,
		Ports:            s.Ports,
	}
}

func toFileCheck(c Check) fileCheck {
	var f fileCheck
	if c.TCP != nil {
		f.TCP = &fileTCP{Address: c.TCP.Address}
	}
	if c.Exec != nil {
		f.Exec = &fileExec{Command: c.Exec.Command}
	}
	if c.Listen != nil {
		f.Listen = &fileListen{Port: c.Listen.Port, Address: addrText(c.Listen.Address)}
	}
	if c.Process != nil {
		f.Process = &fileProcess{PIDFile: c.Process.PIDFile, Name: c.Process.Name}
	}
	if h := c.HTTP; h != nil {
		status := strconv.Itoa(h.StatusMin)
		if h.StatusMax != h.StatusMin {
			status += "-" + strconv.Itoa(h.StatusMax)
		}
		f.HTTP = &fileHTTP{URL: h.URL, ExpectStatus: status}
	}
	return f
}

func toFilePool(p Pool) filePool {
	return filePool{Name: p.Name, Prefixes: convert(p.Prefixes, netip.Prefix.String)}
}

// convert maps each of in through format; an empty list stays nil.
func convert[T, U any](in []T, format func(T) U) []U {
	if len(in) == 0 {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = format(v)
	}
	return out
}

// addrText formats an optional address: "" when unset.
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
