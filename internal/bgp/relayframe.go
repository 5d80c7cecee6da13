package bgp

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// BGP message framing for the relay (relay.go): plain functions over byte
// slices, without I/O, so that they can be fuzzed (relayframe_test.go).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Marker (16 octets of 0xff)                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Length               |      Type     |   body ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	                                              RFC 4271 §4.1

const (
	headerLen = 19
	// maxMessageLen is RFC 4271's limit; maxExtendedLen is RFC 8654's,
	// once both sides advertised the Extended Message capability.
	maxMessageLen  = 4096
	maxExtendedLen = 65535

	msgOpen         = 1
	msgUpdate       = 2
	msgNotification = 3
	msgKeepalive    = 4

	errCease              = 6 // RFC 4271 §4.5
	ceaseCollisionSubcode = 7 // RFC 4486

	capExtendedMessage = 6  // RFC 8654
	capFourOctetAS     = 65 // RFC 6793
	attrMPReach        = 14 // RFC 4760
	attrMPUnreach      = 15
	attrFlagExtLen     = 0x10
	paramCapabilities  = 2 // RFC 5492
)

var (
	errBadMarker = errors.New("bgp header: marker is not all ones")
	errBadLength = errors.New("bgp header: length below 19")
)

// keepaliveMessage is a complete KEEPALIVE: a header and no body.
var keepaliveMessage = func() []byte {
	b := bytes.Repeat([]byte{0xff}, headerLen)
	binary.BigEndian.PutUint16(b[16:], headerLen)
	b[18] = msgKeepalive
	return b
}()

// frameLength checks a message header and returns the message's length,
// header included. Lengths above maxMessageLen are not errors here: only
// the UPDATE verdict cares (see verdict).
func frameLength(hdr []byte) (int, error) {
	if len(hdr) < headerLen {
		return 0, errBadLength
	}
	for _, b := range hdr[:16] {
		if b != 0xff {
			return 0, errBadMarker
		}
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < headerLen {
		return 0, errBadLength
	}
	return n, nil
}

// action is what the relay does with a message from the router.
type action int

const (
	forward action = iota // hand it to GoBGP
	discard               // an UPDATE vipd would reject anyway
)

// verdict decides the fate of one whole message from the router. UPDATEs
// are discarded, except End-of-RIB markers (graceful restart needs them)
// and UPDATEs longer than the session allows, which GoBGP must see to
// answer with the NOTIFICATION RFC 4271 asks for. extended says both sides
// advertised the Extended Message capability.
func verdict(msg []byte, extended bool) action {
	if len(msg) < headerLen || msg[18] != msgUpdate {
		return forward
	}
	limit := maxMessageLen
	if extended {
		limit = maxExtendedLen
	}
	if len(msg) > limit || isEndOfRIB(msg[headerLen:]) {
		return forward
	}
	return discard
}

// isEndOfRIB reports whether an UPDATE body is an End-of-RIB marker (RFC
// 4724 §2): empty for IPv4 unicast; for other families no withdrawn routes,
// no NLRI and one attribute, an MP_UNREACH_NLRI holding only AFI and SAFI.
func isEndOfRIB(body []byte) bool {
	if len(body) == 4 {
		return binary.BigEndian.Uint32(body) == 0
	}
	if len(body) < 4 || binary.BigEndian.Uint16(body) != 0 {
		return false
	}
	attrs := body[4:]
	if int(binary.BigEndian.Uint16(body[2:])) != len(attrs) {
		return false
	}
	typ, value, rest, ok := nextAttribute(attrs)
	return ok && len(rest) == 0 && typ == attrMPUnreach && len(value) == 3
}

// nextAttribute splits the first path attribute off attrs (RFC 4271 §4.3).
func nextAttribute(attrs []byte) (typ byte, value, rest []byte, ok bool) {
	if len(attrs) < 3 {
		return 0, nil, nil, false
	}
	flags, typ := attrs[0], attrs[1]
	n, hdr := int(attrs[2]), 3
	if flags&attrFlagExtLen != 0 {
		if len(attrs) < 4 {
			return 0, nil, nil, false
		}
		n, hdr = int(binary.BigEndian.Uint16(attrs[2:])), 4
	}
	if len(attrs) < hdr+n {
		return 0, nil, nil, false
	}
	return typ, attrs[hdr : hdr+n], attrs[hdr+n:], true
}

// prefixCounts is how many prefixes one UPDATE announces and withdraws.
type prefixCounts struct {
	announced, withdrawn int
}

// countPrefixes counts the prefixes an UPDATE body announces and withdraws:
// IPv4 NLRI and withdrawn routes, and the NLRI of MP_REACH_NLRI and
// MP_UNREACH_NLRI of unicast and multicast families (plain prefix
// encoding, no ADD-PATH, which vipd never negotiates). Other families and
// malformed parts count nothing: the counts are for an operator, the
// UPDATE is discarded either way.
func countPrefixes(body []byte) prefixCounts {
	var c prefixCounts
	if len(body) < 2 {
		return c
	}
	wl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+wl+2 {
		return c
	}
	c.withdrawn = countNLRI(body[2 : 2+wl])
	rest := body[2+wl:]
	al := int(binary.BigEndian.Uint16(rest))
	if len(rest) < 2+al {
		return c
	}
	attrs := rest[2 : 2+al]
	c.announced = countNLRI(rest[2+al:])
	for len(attrs) > 0 {
		typ, value, next, ok := nextAttribute(attrs)
		if !ok {
			break
		}
		switch typ {
		case attrMPReach:
			c.announced += countMPReach(value)
		case attrMPUnreach:
			if len(value) >= 3 && unicastSAFI(value[2]) {
				c.withdrawn += countNLRI(value[3:])
			}
		}
		attrs = next
	}
	return c
}

// countMPReach counts the NLRI of an MP_REACH_NLRI value (RFC 4760 §3):
// AFI, SAFI, next-hop length and next hop, a reserved octet, then NLRI.
func countMPReach(v []byte) int {
	if len(v) < 4 || !unicastSAFI(v[2]) {
		return 0
	}
	nlri := 4 + int(v[3]) + 1
	if len(v) < nlri {
		return 0
	}
	return countNLRI(v[nlri:])
}

func unicastSAFI(safi byte) bool { return safi == 1 || safi == 2 }

// countNLRI counts length-prefixed prefixes (RFC 4271 §4.3). A truncated
// or impossible prefix ends the count.
func countNLRI(b []byte) int {
	n := 0
	for len(b) > 0 {
		bits := int(b[0])
		if bits > 128 {
			return n
		}
		size := 1 + (bits+7)/8
		if len(b) < size {
			return n
		}
		b = b[size:]
		n++
	}
	return n
}

// advertisesExtendedMessage reports whether an OPEN body carries the
// Extended Message capability.
func advertisesExtendedMessage(body []byte) bool {
	_, ok := capability(body, capExtendedMessage)
	return ok
}

// openIdentity returns what RFC 4271 §6.8 compares to resolve a
// connection collision: the BGP Identifier of an OPEN body and the
// sender's AS, from the 4-octet AS capability (RFC 6793) when present.
func openIdentity(body []byte) (id uint32, asn uint32, ok bool) {
	if len(body) < openFixedLen {
		return 0, 0, false
	}
	asn = uint32(binary.BigEndian.Uint16(body[1:3]))
	if v, ok := capability(body, capFourOctetAS); ok && len(v) == 4 {
		asn = binary.BigEndian.Uint32(v)
	}
	return binary.BigEndian.Uint32(body[5:9]), asn, true
}

// openFixedLen is the OPEN body before its optional parameters: version,
// AS, hold time, BGP identifier, parameters length.
const openFixedLen = 10

// capability returns the value of the first capability with code in an
// OPEN body, in plain (RFC 5492) or extended (RFC 9072) optional
// parameters.
func capability(body []byte, code byte) ([]byte, bool) {
	if len(body) < openFixedLen {
		return nil, false
	}
	params, lenSize := body[openFixedLen:], 1
	n := int(body[9])
	if n == 255 && len(params) >= 3 && params[0] == 255 {
		// RFC 9072: 255, then a 2-octet length
		params, lenSize, n = params[3:], 2, int(binary.BigEndian.Uint16(params[1:3]))
	}
	if len(params) < n {
		return nil, false
	}
	params = params[:n]
	for len(params) >= 1+lenSize {
		typ := params[0]
		n := int(params[1])
		if lenSize == 2 {
			n = int(binary.BigEndian.Uint16(params[1:]))
		}
		start := 1 + lenSize
		if len(params) < start+n {
			return nil, false
		}
		if typ == paramCapabilities {
			if v, ok := findCapability(params[start:start+n], code); ok {
				return v, true
			}
		}
		params = params[start+n:]
	}
	return nil, false
}

// findCapability returns the value of code in a capabilities parameter.
func findCapability(caps []byte, code byte) ([]byte, bool) {
	for len(caps) >= 2 {
		n := int(caps[1])
		if len(caps) < 2+n {
			return nil, false
		}
		if caps[0] == code {
			return caps[2 : 2+n], true
		}
		caps = caps[2+n:]
	}
	return nil, false
}

// ceaseCollision is the NOTIFICATION that closes the losing connection of
// a collision: Cease, Connection Collision Resolution (RFC 4486).
var ceaseCollision = func() []byte {
	b := bytes.Repeat([]byte{0xff}, headerLen+2)
	binary.BigEndian.PutUint16(b[16:], headerLen+2)
	b[18], b[19], b[20] = msgNotification, errCease, ceaseCollisionSubcode
	return b
}()
