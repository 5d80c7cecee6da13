package xdp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// hashSeed is bpf/dsr.c's HASH_SEED. Changing it (or the hash) changes the
// backend of every flow, and nodes running different versions would
// disagree.
const hashSeed = 0x76697064

// flowHash is the program's flow hash: MurmurHash3 (x86_32) over the
// client's address and port as 32-bit words in network order (an IPv4
// address is one word, an IPv6 address four, the port one), seeded with
// hashSeed. Only the client's side is hashed: the load balancer's address
// and port select the table, and a flow's packets hash alike on every
// node. Murmur's finalizer spreads every input bit over the result, so
// the slot, hash mod TableSize, is evenly spread however alike the
// clients' addresses are.
func flowHash(src netip.Addr, sport uint16) uint32 {
	h := uint32(hashSeed)
	if src.Is4() {
		a := src.As4()
		h = mixWord(h, binary.BigEndian.Uint32(a[:]))
		h = mixWord(h, uint32(sport))
		return fmix(h, 8)
	}
	a := src.As16()
	for i := 0; i < 16; i += 4 {
		h = mixWord(h, binary.BigEndian.Uint32(a[i:]))
	}
	h = mixWord(h, uint32(sport))
	return fmix(h, 20)
}

// Slot is the slot of a load balancer's table that a flow from src:sport
// uses, on every node.
func Slot(src netip.Addr, sport uint16) int {
	return int(flowHash(src.Unmap(), sport) % TableSize)
}

func mixWord(h, k uint32) uint32 {
	k *= 0xcc9e2d51
	k = bits.RotateLeft32(k, 15)
	k *= 0x1b873593
	h ^= k
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

func fmix(h, n uint32) uint32 {
	h ^= n
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
