package bfd

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary packets to the authenticated receive path:
// it must refuse them for a known reason, and what it accepts must be
// exactly what sign makes of the same header, key and sequence number.
func FuzzVerify(f *testing.F) {
	seedCaptured(f)
	for _, typ := range authTypes {
		p := authPacket()
		_ = sign(&p, Auth{Type: typ, KeyID: 1, Key: "fuzz-key"}, 42)
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	reasons := []error{ErrShort, ErrLength, ErrVersion, ErrDetectMult, ErrMultipoint, ErrMyDiscriminator,
		ErrYourDiscriminator, ErrAuth, ErrAuthSection, ErrAuthKeyID, ErrAuthDigest}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range authTypes {
			a := Auth{Type: typ, KeyID: 1, Key: "fuzz-key"}
			p, err := ParseReceived(b, true)
			var seq uint32
			if err == nil {
				seq, err = verify(p, a)
			}
			if err != nil {
				if !slicesContainsErr(reasons, err) {
					t.Fatalf("%s: refused for an unknown reason: %v", typ, err)
				}
				continue
			}
			q := p
			q.Auth = nil
			q.AuthBit = false
			if err := sign(&q, Auth{Type: typ, KeyID: 1, Key: "fuzz-key"}, seq); err != nil {
				t.Fatal(err)
			}
			q.Auth[3] = p.Auth[3] // Reserved as sent
			if err := resign(&q, a); err != nil {
				t.Fatal(err)
			}
			want, _ := q.MarshalBinary()
			if !bytes.Equal(want, b[:b[3]]) {
				t.Fatalf("%s: accepted\n%x\nbut signing its header gives\n%x", typ, b[:b[3]], want)
			}
		}
	})
}

// resign recomputes the digest of a packet whose section holds the key.
func resign(p *ControlPacket, a Auth) error {
	copy(p.Auth[authHeaderLen:], append([]byte(a.Key), make([]byte, a.Type.digestLen())...))
	d, err := digest(*p, a.Type)
	if err != nil {
		return err
	}
	copy(p.Auth[authHeaderLen:], d)
	return nil
}

func slicesContainsErr(reasons []error, err error) bool {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// FuzzSign checks that every packet sign makes verifies with the same
// key, type and key ID, returns its sequence number, and fails with any
// other key.
func FuzzSign(f *testing.F) {
	f.Add(uint8(4), uint8(1), "key", uint32(1), uint32(7), uint32(9), uint8(3), uint8(3))
	f.Add(uint8(2), uint8(255), "0123456789abcdef", uint32(0xffffffff), uint32(1), uint32(0), uint8(1), uint8(255))
	f.Fuzz(func(t *testing.T, typ, keyID uint8, key string, seq, my, your uint32, state, mult uint8) {
		a := Auth{Type: AuthType(typ%4 + 2), KeyID: keyID, Key: key}
		if a.validate() != nil || my == 0 || mult == 0 {
			return
		}
		p := ControlPacket{Version: Version, State: State(state % 4), DetectMult: mult, MyDiscriminator: my,
			YourDiscriminator: your, DesiredMinTx: time.Second, RequiredMinRx: time.Second}
		if your == 0 {
			p.State = Down
		}
		if err := sign(&p, a, seq); err != nil {
			t.Fatal(err)
		}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseReceived(b, true)
		if err != nil {
			t.Fatalf("signed packet refused: %v", err)
		}
		if s, err := verify(got, a); err != nil || s != seq {
			t.Fatalf("verify = %d, %v; want %d", s, err, seq)
		}
		wrong := a
		wrong.Key = key + "x"
		if wrong.validate() == nil {
			if _, err := verify(got, wrong); !errors.Is(err, ErrAuthDigest) {
				t.Fatalf("verified with another key: %v", err)
			}
		}
	})
}
