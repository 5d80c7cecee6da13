package config

import (
	"fmt"
	"strconv"
	"strings"
)

// String formats c as "high:low", the form the config file uses.
func (c Community) String() string {
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xffff)
}

// String formats c as "global:local1:local2", the form the config file uses.
func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2)
}

// parseCommunity reads an RFC 1997 community "a:b" with 16-bit halves.
func parseCommunity(s string) (Community, error) {
	parts, err := splitNumbers(s, 2, 16)
	if err != nil {
		return 0, fmt.Errorf(`want a community like "64512:100" (two numbers 0..65535), got %q`, s)
	}
	return Community(parts[0]<<16 | parts[1]), nil
}

// parseLargeCommunity reads an RFC 8092 large community "a:b:c" with
// 32-bit parts.
func parseLargeCommunity(s string) (LargeCommunity, error) {
	parts, err := splitNumbers(s, 3, 32)
	if err != nil {
		return LargeCommunity{}, fmt.Errorf(`want a large community like "4200000000:1:2" (three numbers 0..4294967295), got %q`, s)
	}
	return LargeCommunity{Global: parts[0], Local1: parts[1], Local2: parts[2]}, nil
}

// splitNumbers splits s at ':' into n decimal numbers of at most bits bits.
func splitNumbers(s string, n, bits int) ([]uint32, error) {
	fields := strings.Split(s, ":")
	if len(fields) != n {
		return nil, fmt.Errorf("want %d numbers, got %d", n, len(fields))
	}
	out := make([]uint32, n)
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 10, bits)
		if err != nil {
			return nil, err
		}
		out[i] = uint32(v)
	}
	return out, nil
}
