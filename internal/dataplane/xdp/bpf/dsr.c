// SPDX-License-Identifier: GPL-2.0
//
// vipd's XDP program: L2 direct server return for load balancers in mode
// dsr. For a TCP or UDP packet to a load balancer's address and port it
// picks the backend from the load balancer's Maglev table (the slot is a
// hash of the client's address and port), rewrites the Ethernet
// destination to the backend's MAC and the source to this interface's
// own, and sends the frame back out. It keeps no per-flow state, so every
// node that holds the same table sends a flow to the same backend.
//
// Everything else passes to the kernel untouched: other addresses and
// ports, fragments, ICMP (packet too big included), IPv6 with extension
// headers, VLAN-tagged frames, frames not addressed to this interface's
// MAC (a bridge may flood them here), and anything too short to parse.
//
// Build: `make generate` (bpf2go, Debian's clang). The generated object is
// committed, so building vipd needs no clang.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// TABLE_SIZE is the number of slots of a Maglev table (prime). The Go side
// (maglevSlots) must agree.
#define TABLE_SIZE 65537
#define MAX_LBS 1024
#define MAX_IFACES 64

#define HASH_SEED 0x76697064 // "vipd"

// vip_key identifies a load balancer: address (IPv4 in the first four
// bytes, the rest zero), port in network order, IP protocol, family.
struct vip_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 family; // 4 or 6
};

// lb_value is a load balancer's index into tables and counters.
struct lb_value {
	__u32 id;
};

// slot is one entry of a Maglev table: where the flows hashed to it go.
// flags == 0: the load balancer has no backend; such packets are dropped,
// as the nftables modes drop them.
struct slot {
	__u8 mac[6];
	__u16 flags;
	__u32 ifindex; // the interface that reaches the backend
};
#define SLOT_VALID 1

// iface is an interface the program runs on: its own MAC.
struct iface {
	__u8 mac[6];
	__u16 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LBS);
	__type(key, struct vip_key);
	__type(value, struct lb_value);
} lbs SEC(".maps");

// tables holds each load balancer's Maglev table, by id. The inner map
// is the template of every table: the Go side creates one per load
// balancer (and per change) and swaps it in with one update, so the
// program sees the old table or the new one, never a mix.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_LBS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(max_entries, TABLE_SIZE);
		// Sizes, not types: clang leaves a struct inside the inner
		// map's definition as a forward declaration.
		__uint(key_size, sizeof(__u32));
		__uint(value_size, sizeof(struct slot));
	});
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_IFACES);
	__type(key, __u32); // ifindex
	__type(value, struct iface);
} ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_LBS);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

// mix_word and fmix are MurmurHash3's (x86_32) block step and finalizer.
// The Go side (flowHash) computes the same hash.
static __always_inline __u32 mix_word(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 fmix(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

// forward sends the frame to the backend in the load balancer's slot for
// hash, or drops it if the load balancer has no backend.
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth,
				   const struct vip_key *key, __u32 hash)
{
	struct lb_value *lb = bpf_map_lookup_elem(&lbs, key);
	if (!lb)
		return XDP_PASS;
	__u32 id = lb->id;

	struct counter *c = bpf_map_lookup_elem(&counters, &id);
	if (c) {
		c->packets++;
		c->bytes += bpf_xdp_get_buff_len(ctx);
	}

	void *table = bpf_map_lookup_elem(&tables, &id);
	if (!table)
		return XDP_DROP;
	__u32 idx = hash % TABLE_SIZE;
	struct slot *s = bpf_map_lookup_elem(table, &idx);
	if (!s || !(s->flags & SLOT_VALID))
		return XDP_DROP;

	__u32 out = s->ifindex;
	struct iface *oif = bpf_map_lookup_elem(&ifaces, &out);
	if (!oif)
		return XDP_DROP;
	mac_copy(eth->h_dest, s->mac);
	mac_copy(eth->h_source, oif->mac);
	if (out == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(out, 0);
}

// ports reads the source and destination ports at l4, or returns -1.
static __always_inline int ports(void *l4, void *end, __u16 *sport, __u16 *dport)
{
	__u16 *p = l4;
	if ((void *)(p + 2) > end)
		return -1;
	*sport = p[0];
	*dport = p[1];
	return 0;
}

static __always_inline int handle_ipv4(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
	// More fragments, or a fragment offset: the ports are not in every
	// fragment, so the kernel reassembles.
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	void *l4 = (void *)ip + ip->ihl * 4;
	__u16 sport, dport;
	if (ports(l4, end, &sport, &dport) < 0)
		return XDP_PASS;

	struct vip_key key = {};
	__builtin_memcpy(key.addr, &ip->daddr, 4);
	key.port = dport;
	key.proto = ip->protocol;
	key.family = 4;

	__u32 h = HASH_SEED;
	h = mix_word(h, bpf_ntohl(ip->saddr));
	h = mix_word(h, bpf_ntohs(sport));
	return forward(ctx, eth, &key, fmix(h, 8));
}

static __always_inline int handle_ipv6(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end)
		return XDP_PASS;
	if (ip6->version != 6)
		return XDP_PASS;
	// Only TCP or UDP right after the fixed header: a fragment header or
	// any other extension header passes.
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	__u16 sport, dport;
	if (ports(ip6 + 1, end, &sport, &dport) < 0)
		return XDP_PASS;

	struct vip_key key = {};
	__builtin_memcpy(key.addr, &ip6->daddr, 16);
	key.port = dport;
	key.proto = ip6->nexthdr;
	key.family = 6;

	__u32 h = HASH_SEED;
	h = mix_word(h, bpf_ntohl(ip6->saddr.in6_u.u6_addr32[0]));
	h = mix_word(h, bpf_ntohl(ip6->saddr.in6_u.u6_addr32[1]));
	h = mix_word(h, bpf_ntohl(ip6->saddr.in6_u.u6_addr32[2]));
	h = mix_word(h, bpf_ntohl(ip6->saddr.in6_u.u6_addr32[3]));
	h = mix_word(h, bpf_ntohs(sport));
	return forward(ctx, eth, &key, fmix(h, 20));
}

// xdp.frags: the program copes with frames in several buffers (it reads
// only the headers, which are in the first). Without it, veth takes
// segmentation offload away from its peer, and a device may refuse an
// MTU above a page: the node's other traffic would pay for it.
SEC("xdp.frags")
int vipd_dsr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;

	__u32 in = ctx->ingress_ifindex;
	struct iface *self = bpf_map_lookup_elem(&ifaces, &in);
	if (!self || !mac_equal(eth->h_dest, self->mac))
		return XDP_PASS;

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return handle_ipv4(ctx, eth, end);
	case bpf_htons(ETH_P_IPV6):
		return handle_ipv6(ctx, eth, end);
	}
	return XDP_PASS;
}

char __license[] SEC("license") = "GPL";
