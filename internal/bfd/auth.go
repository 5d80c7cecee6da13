package bfd

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"time"
)

// A keyed MD5 or SHA1 Authentication Section (RFC 5880 §4.3, §4.4):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Auth Len    |  Auth Key ID  |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|              Auth Key/Digest (MD5: 16, SHA1: 20 bytes)...     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The sender puts the key, zero-padded, in the digest field, hashes the
// whole packet and replaces the key with the hash; the receiver does the
// same with its own key and compares.

// AuthType is the Auth Type field (RFC 5880 §4.1).
type AuthType uint8

// The authentication types. vipd implements the keyed ones; Simple
// Password sends the key in clear.
const (
	AuthNone                AuthType = 0
	AuthSimplePassword      AuthType = 1
	AuthKeyedMD5            AuthType = 2
	AuthMeticulousKeyedMD5  AuthType = 3
	AuthKeyedSHA1           AuthType = 4
	AuthMeticulousKeyedSHA1 AuthType = 5
)

var authNames = [...]string{
	AuthNone: "None", AuthSimplePassword: "SimplePassword",
	AuthKeyedMD5: "KeyedMD5", AuthMeticulousKeyedMD5: "MeticulousKeyedMD5",
	AuthKeyedSHA1: "KeyedSHA1", AuthMeticulousKeyedSHA1: "MeticulousKeyedSHA1",
}

func (t AuthType) String() string {
	if int(t) < len(authNames) {
		return authNames[t]
	}
	return fmt.Sprintf("AuthType(%d)", uint8(t))
}

// MarshalText makes AuthType a JSON string.
func (t AuthType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// digestLen is the length of the type's Auth Key/Digest field; 0 for a
// type vipd does not implement.
func (t AuthType) digestLen() int {
	switch t {
	case AuthKeyedMD5, AuthMeticulousKeyedMD5:
		return md5.Size
	case AuthKeyedSHA1, AuthMeticulousKeyedSHA1:
		return sha1.Size
	}
	return 0
}

func (t AuthType) meticulous() bool {
	return t == AuthMeticulousKeyedMD5 || t == AuthMeticulousKeyedSHA1
}

func (t AuthType) newHash() hash.Hash {
	if t == AuthKeyedMD5 || t == AuthMeticulousKeyedMD5 {
		return md5.New()
	}
	return sha1.New()
}

// authHeaderLen is the section's length before the digest.
const authHeaderLen = 8

// Auth is a session's authentication: zero Type means none.
type Auth struct {
	Type  AuthType `json:"type"`
	KeyID uint8    `json:"key_id"`
	Key   string   `json:"-"` // at most 16 bytes (MD5) or 20 (SHA1); never shown
}

// LogValue keeps the key out of logs.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", a.Type.String()), slog.Int("key_id", int(a.KeyID)))
}

// Name is the type's name, or "" without authentication.
func (a Auth) Name() string {
	if !a.Enabled() {
		return ""
	}
	return a.Type.String()
}

// Enabled reports whether packets are authenticated.
func (a Auth) Enabled() bool { return a.Type != AuthNone }

func (a Auth) validate() error {
	n := a.Type.digestLen()
	switch {
	case a.Type == AuthNone:
		return nil
	case n == 0:
		return fmt.Errorf("auth type %s: not supported (want keyed or meticulous keyed MD5 or SHA1)", a.Type)
	case a.Key == "":
		return errors.New("auth key: empty")
	case len(a.Key) > n:
		return fmt.Errorf("auth key: %d bytes, but %s keys have at most %d", len(a.Key), a.Type, n)
	}
	return nil
}

// Authentication errors; verify wraps them with detail.
var (
	ErrAuthSection  = errors.New("bad Authentication Section")
	ErrAuthKeyID    = errors.New("unknown Auth Key ID")
	ErrAuthDigest   = errors.New("digest mismatch")
	ErrAuthSequence = errors.New("sequence number out of range")
)

// sign sets p's A bit and Authentication Section for a and seq.
func sign(p *ControlPacket, a Auth, seq uint32) error {
	p.AuthBit = true
	p.Auth = section(a, seq, p.Auth[:0])
	d, err := digest(*p, a.Type)
	if err != nil {
		return err
	}
	copy(p.Auth[authHeaderLen:], d)
	return nil
}

// digest is t's hash over p as sent, whose section carries the padded key
// in place of the digest (RFC 5880 §6.7.3, §6.7.4).
func digest(p ControlPacket, t AuthType) ([]byte, error) {
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	h := t.newHash()
	h.Write(b)
	return h.Sum(nil), nil
}

// section builds an Authentication Section carrying the padded key in
// the digest field, appended to dst.
func section(a Auth, seq uint32, dst []byte) []byte {
	n := a.Type.digestLen()
	s := append(dst, byte(a.Type), byte(authHeaderLen+n), a.KeyID, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(s[len(s)-4:], seq)
	key := make([]byte, n)
	copy(key, a.Key)
	return append(s, key...)
}

// verify checks p's Authentication Section against a (RFC 5880 §6.7.3,
// §6.7.4) and returns its sequence number; the sequence window is the
// caller's (authSeq). p must have passed ParseReceived with auth true.
func verify(p ControlPacket, a Auth) (uint32, error) {
	s, n := p.Auth, a.Type.digestLen()
	switch {
	case len(s) < 2 || AuthType(s[0]) != a.Type:
		got := "none"
		if len(s) > 0 {
			got = AuthType(s[0]).String()
		}
		return 0, fmt.Errorf("%w: Auth Type %s, want %s", ErrAuthSection, got, a.Type)
	case int(s[1]) != authHeaderLen+n || len(s) != authHeaderLen+n:
		return 0, fmt.Errorf("%w: Auth Len %d in %d bytes, want %d", ErrAuthSection, s[1], len(s), authHeaderLen+n)
	case s[2] != a.KeyID:
		return 0, fmt.Errorf("%w: %d, want %d", ErrAuthKeyID, s[2], a.KeyID)
	}
	seq := binary.BigEndian.Uint32(s[4:8])
	q := p
	q.Auth = section(a, seq, nil)
	q.Auth[3] = s[3] // Reserved is covered by the digest as sent
	d, err := digest(q, a.Type)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrAuthSection, err)
	}
	if subtle.ConstantTimeCompare(d, s[authHeaderLen:]) != 1 {
		return 0, ErrAuthDigest
	}
	return seq, nil
}

// authSeq is a session's receive sequence state (bfd.RcvAuthSeq and
// bfd.AuthSeqKnown, RFC 5880 §6.8.1).
type authSeq struct {
	known bool
	last  uint32
	at    time.Time // of the last authenticated packet
}

// accept applies the sequence window of RFC 5880 §6.7.3 to an
// authenticated packet's seq and, if it passes, records it. The window is
// 3 × Detect Mult ahead of the last one, excluding it when meticulous.
// After twice the detection time without packets (forget), any number is
// taken again, so a remote that restarted can come back.
func (s *authSeq) accept(seq uint32, t AuthType, detectMult uint8, now time.Time, forget time.Duration) error {
	if s.known && now.Sub(s.at) > forget {
		s.known = false
	}
	if s.known {
		lo := uint32(0)
		if t.meticulous() {
			lo = 1
		}
		ahead := seq - s.last // modulo 2^32, as the RFC's circular space
		if ahead < lo || ahead > 3*uint32(detectMult) {
			return fmt.Errorf("%w: %d after %d (window %d..%d ahead)", ErrAuthSequence, seq, s.last, lo, 3*uint32(detectMult))
		}
	}
	s.known, s.last, s.at = true, seq, now
	return nil
}
