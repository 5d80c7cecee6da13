package bfd

import (
	"errors"
	"fmt"
)

// Reception errors: why a received Control packet was discarded (RFC 5880
// §6.8.6). ParseReceived wraps them with the offending value.
var (
	ErrVersion           = errors.New("unsupported version")
	ErrDetectMult        = errors.New("the Detect Mult field is zero")
	ErrMultipoint        = errors.New("the Multipoint bit is set")
	ErrMyDiscriminator   = errors.New("the My Discriminator field is zero")
	ErrYourDiscriminator = errors.New("the Your Discriminator field is zero outside Down and AdminDown")
	ErrAuth              = errors.New("authentication mismatch")
)

// ParseReceived decodes a received UDP payload and applies, in the RFC's
// order, every check of RFC 5880 §6.8.6 that needs no session:
//
//   - the version is 1;
//   - Length is at least 24 (26 with the A bit) and no more than the
//     payload (in UnmarshalBinary);
//   - Detect Mult is not zero;
//   - the Multipoint bit is clear;
//   - My Discriminator is not zero;
//   - Your Discriminator is zero only in state Down or AdminDown;
//   - the A bit is set exactly when authentication is configured (auth).
//
// The session lookup (an unknown Your Discriminator is discarded) and the
// TTL rules of RFC 5881/5883 need the session; the demultiplexer does them,
// and checks the Authentication Section (verify) of a session with auth.
func ParseReceived(payload []byte, auth bool) (ControlPacket, error) {
	var p ControlPacket
	if err := p.UnmarshalBinary(payload); err != nil {
		return p, err
	}
	switch {
	case p.Version != Version:
		return p, fmt.Errorf("%w: %d", ErrVersion, p.Version)
	case p.DetectMult == 0:
		return p, ErrDetectMult
	case p.Multipoint:
		return p, ErrMultipoint
	case p.MyDiscriminator == 0:
		return p, ErrMyDiscriminator
	case p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown:
		return p, fmt.Errorf("%w: state %s", ErrYourDiscriminator, p.State)
	case p.AuthBit != auth:
		return p, fmt.Errorf("%w: A bit %t, authentication configured %t", ErrAuth, p.AuthBit, auth)
	}
	return p, nil
}
