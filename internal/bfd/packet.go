package bfd

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// A BFD Control packet (RFC 5880 §4.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       My Discriminator                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Your Discriminator                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Desired Min TX Interval                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Required Min RX Interval                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Required Min Echo RX Interval                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// followed, when the A bit is set, by an Authentication Section:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Auth Len    |    Authentication Data...     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Intervals are in microseconds. Length counts the whole packet.

const (
	// Version is the BFD protocol version this package speaks.
	Version = 1
	// HeaderLen is the length of a Control packet without authentication.
	HeaderLen = 24
	// minAuthLen is the shortest packet with the A bit set: the header plus
	// Auth Type and Auth Len.
	minAuthLen = HeaderLen + 2
	// maxInterval is the largest interval the 32-bit microsecond fields hold.
	maxInterval = time.Duration(math.MaxUint32) * time.Microsecond
)

// Flag bits of the second byte, below the two State bits.
const (
	flagPoll       = 1 << 5 // P
	flagFinal      = 1 << 4 // F
	flagCPI        = 1 << 3 // C: Control Plane Independent
	flagAuth       = 1 << 2 // A: Authentication Present
	flagDemand     = 1 << 1 // D
	flagMultipoint = 1 << 0 // M
)

// Codec errors. UnmarshalBinary wraps them with detail; test with errors.Is.
var (
	ErrShort    = errors.New("shorter than a BFD Control packet")
	ErrLength   = errors.New("bad Length field")
	ErrInterval = errors.New("interval out of range")
)

// ControlPacket is a decoded BFD Control packet. Every bit of the first
// Length bytes is kept, so MarshalBinary reproduces what UnmarshalBinary
// read.
type ControlPacket struct {
	Version    uint8 // 3 bits; Version for packets we build
	Diag       Diag  // 5 bits
	State      State
	Poll       bool
	Final      bool
	CPI        bool // Control Plane Independent
	AuthBit    bool // A: an Authentication Section follows
	Demand     bool
	Multipoint bool
	DetectMult uint8

	MyDiscriminator   uint32
	YourDiscriminator uint32

	DesiredMinTx    time.Duration // microsecond precision on the wire
	RequiredMinRx   time.Duration
	RequiredMinEcho time.Duration

	// Auth holds bytes 24 to Length: the Authentication Section when AuthBit
	// is set. nil when Length is 24.
	Auth []byte
}

var (
	_ encoding.BinaryMarshaler   = (*ControlPacket)(nil)
	_ encoding.BinaryUnmarshaler = (*ControlPacket)(nil)
)

// MarshalBinary encodes the packet; Length is HeaderLen plus len(Auth).
func (p *ControlPacket) MarshalBinary() ([]byte, error) {
	length := HeaderLen + len(p.Auth)
	if length > math.MaxUint8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrLength, length)
	}
	intervals := [3]time.Duration{p.DesiredMinTx, p.RequiredMinRx, p.RequiredMinEcho}
	for _, d := range intervals {
		if d < 0 || d > maxInterval {
			return nil, fmt.Errorf("%w: %v", ErrInterval, d)
		}
	}
	b := make([]byte, HeaderLen, length)
	b[0] = (p.Version&0x7)<<5 | uint8(p.Diag)&0x1f
	b[1] = (uint8(p.State)&0x3)<<6 | p.flags()
	b[2] = p.DetectMult
	b[3] = uint8(length)
	binary.BigEndian.PutUint32(b[4:], p.MyDiscriminator)
	binary.BigEndian.PutUint32(b[8:], p.YourDiscriminator)
	for i, d := range intervals {
		binary.BigEndian.PutUint32(b[12+4*i:], uint32(d/time.Microsecond))
	}
	return append(b, p.Auth...), nil
}

func (p *ControlPacket) flags() uint8 {
	var f uint8
	for _, bit := range []struct {
		set  bool
		mask uint8
	}{
		{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.CPI, flagCPI},
		{p.AuthBit, flagAuth}, {p.Demand, flagDemand}, {p.Multipoint, flagMultipoint},
	} {
		if bit.set {
			f |= bit.mask
		}
	}
	return f
}

// UnmarshalBinary decodes b, the UDP payload. It checks only what decoding
// needs: the §6.8.6 length rules (Length at least 24, or 26 with the A bit,
// and no more than len(b)). Bytes after Length are ignored. Everything else
// §6.8.6 asks is in CheckReceived.
func (p *ControlPacket) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	length := int(b[3])
	*p = ControlPacket{
		Version:           b[0] >> 5,
		Diag:              Diag(b[0] & 0x1f),
		State:             State(b[1] >> 6),
		Poll:              b[1]&flagPoll != 0,
		Final:             b[1]&flagFinal != 0,
		CPI:               b[1]&flagCPI != 0,
		AuthBit:           b[1]&flagAuth != 0,
		Demand:            b[1]&flagDemand != 0,
		Multipoint:        b[1]&flagMultipoint != 0,
		DetectMult:        b[2],
		MyDiscriminator:   binary.BigEndian.Uint32(b[4:]),
		YourDiscriminator: binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:      micros(b[12:]),
		RequiredMinRx:     micros(b[16:]),
		RequiredMinEcho:   micros(b[20:]),
	}
	switch {
	case length < HeaderLen, p.AuthBit && length < minAuthLen:
		return fmt.Errorf("%w: %d is below the minimum (auth %t)", ErrLength, length, p.AuthBit)
	case length > len(b):
		return fmt.Errorf("%w: %d exceeds the %d bytes received", ErrLength, length, len(b))
	}
	if length > HeaderLen {
		p.Auth = append([]byte(nil), b[HeaderLen:length]...)
	}
	return nil
}

func micros(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Microsecond
}

// State is a BFD session state (RFC 5880 §4.1), as sent in packets.
type State uint8

// The session states.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

var stateNames = [...]string{AdminDown: "AdminDown", Down: "Down", Init: "Init", Up: "Up"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText makes State a JSON string.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diag is a BFD diagnostic code (RFC 5880 §4.1): why the sender's session
// last changed state.
type Diag uint8

// The diagnostic codes; 9-31 are reserved.
const (
	DiagNone                        Diag = 0
	DiagControlDetectionTimeExpired Diag = 1
	DiagEchoFunctionFailed          Diag = 2
	DiagNeighborSignaledDown        Diag = 3
	DiagForwardingPlaneReset        Diag = 4
	DiagPathDown                    Diag = 5
	DiagConcatenatedPathDown        Diag = 6
	DiagAdministrativelyDown        Diag = 7
	DiagReverseConcatenatedPathDown Diag = 8
)

var diagNames = [...]string{
	DiagNone:                        "None",
	DiagControlDetectionTimeExpired: "ControlDetectionTimeExpired",
	DiagEchoFunctionFailed:          "EchoFunctionFailed",
	DiagNeighborSignaledDown:        "NeighborSignaledDown",
	DiagForwardingPlaneReset:        "ForwardingPlaneReset",
	DiagPathDown:                    "PathDown",
	DiagConcatenatedPathDown:        "ConcatenatedPathDown",
	DiagAdministrativelyDown:        "AdministrativelyDown",
	DiagReverseConcatenatedPathDown: "ReverseConcatenatedPathDown",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// MarshalText makes Diag a JSON string.
func (d Diag) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
