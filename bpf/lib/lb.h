/* Service load-balancing at the pod's tc hooks (IPv4, TCP and UDP):
 *  - lb_translate (from_pod, before policy): a packet to a frontend gets the backend its
 *    connection was given (isth_lbct_v1) or, for a new connection, a random slot's backend; the
 *    destination is rewritten to the backend, so policy and conntrack see the backend.
 *  - lb_rev_nat (both hooks, after conntrack): a reply from a backend gets the frontend back as
 *    its source (and, for hairpin, the real client as its destination).
 *  - lb_reject_icmp: a frontend with no backends answers new connections with ICMP port
 *    unreachable straight into the pod (bpf_redirect_peer), so connects fail at once.
 * Non-first fragments are not translated. */
#pragma once
#include "maps.h"
#include "parse.h"
#include "conntrack.h"

#define LB_NONE 0
#define LB_TRANSLATED 1
#define LB_REJECT 2

static __always_inline int l4_csum_off(__u8 proto)
{
	return proto == IPPROTO_TCP ? 16 : 6;
}

static __always_inline __be32 addr4(const __u8 *a)
{
	return *(const __be32 *)a;
}

/* Rewrites one side (source or destination) of an IPv4 TCP/UDP packet, checksums included. */
static __always_inline int nat4_side(struct __sk_buff *skb, int src, __be32 old_a, __be32 new_a,
				     __be16 old_p, __be16 new_p, __u8 proto)
{
	__u8 vihl;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0)
		return -1;
	__u32 l4 = ETH_HLEN + (vihl & 0x0f) * 4;
	__u32 csum = l4 + l4_csum_off(proto);
	__u64 mangled = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	if (old_a != new_a) {
		if (bpf_l4_csum_replace(skb, csum, old_a, new_a, BPF_F_PSEUDO_HDR | mangled | 4) < 0 ||
		    bpf_l3_csum_replace(skb, ETH_HLEN + 10, old_a, new_a, 4) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + (src ? 12 : 16), &new_a, 4, 0) < 0)
			return -1;
	}
	if (old_p != new_p) {
		if (bpf_l4_csum_replace(skb, csum, old_p, new_p, mangled | 2) < 0 ||
		    bpf_skb_store_bytes(skb, l4 + (src ? 0 : 2), &new_p, 2, 0) < 0)
			return -1;
	}
	return 0;
}

static __always_inline __u64 lb_lifetime(const struct tuple *t)
{
	if (t->tcp_flags & (TCP_FIN | TCP_RST))
		return CT_LIFETIME_CLOSING;
	return t->protocol == IPPROTO_TCP ? CT_LIFETIME_TCP : CT_LIFETIME_UDP;
}

/* The live backend of this connection, or a newly selected one. */
static __always_inline struct lb_backend *lb_backend_of(const struct lb_ct_key *ck,
							const struct lb_svc_value *svc,
							const struct tuple *t, __u64 now, __u32 *id)
{
	struct lb_ct_value *cv = bpf_map_lookup_elem(&isth_lbct_v1, ck);
	if (cv && cv->expires_ns >= now && cv->service_id == svc->service_id) {
		struct lb_backend *b = bpf_map_lookup_elem(&isth_lbbe_v1, &cv->backend_id);
		if (b) { /* stays on its backend while that backend exists */
			*id = cv->backend_id;
			cv->expires_ns = now + lb_lifetime(t);
			return b;
		}
	}
	if (svc->count == 0)
		return 0;
	struct lb_slot_key sk = { .service_id = svc->service_id,
				  .slot = bpf_get_prandom_u32() % svc->count };
	__u32 *bid = bpf_map_lookup_elem(&isth_lbslot_v1, &sk);
	if (!bid)
		return 0;
	struct lb_backend *b = bpf_map_lookup_elem(&isth_lbbe_v1, bid);
	if (!b)
		return 0;
	*id = *bid;
	struct lb_ct_value nv = { .expires_ns = now + lb_lifetime(t), .backend_id = *bid,
				  .service_id = svc->service_id };
	bpf_map_update_elem(&isth_lbct_v1, ck, &nv, BPF_ANY);
	return b;
}

/* Translates a packet to a frontend (from_pod). Updates t to the translated tuple. */
static __always_inline int lb_translate(struct __sk_buff *skb, struct tuple *t, __u64 now)
{
	if (t->family != ISTHMUS_AF_INET || t->icmp_error ||
	    (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP))
		return LB_NONE;
	struct lb_svc_key key = { .port = t->dport, .protocol = t->protocol, .family = t->family };
	__builtin_memcpy(key.addr, t->daddr, 16);
	struct lb_svc_value *svc = bpf_map_lookup_elem(&isth_lbsvc_v1, &key);
	if (!svc)
		return LB_NONE;
	struct lb_ct_key ck = { .cport = t->sport, .vport = t->dport, .protocol = t->protocol,
				.family = t->family };
	__builtin_memcpy(ck.client, t->saddr, 16);
	__builtin_memcpy(ck.vaddr, t->daddr, 16);
	__u32 bid = 0;
	struct lb_backend *b = lb_backend_of(&ck, svc, t, now, &bid);
	if (!b)
		return LB_REJECT;
	__be32 client = addr4(t->saddr), vip = addr4(t->daddr), backend = addr4(b->addr);
	__be16 bport = b->port;
	int hairpin = backend == client;
	__be32 src = hairpin ? bpf_htonl(LB_HAIRPIN_IPV4) : client;

	struct lb_rev_key rk = { .cport = t->sport, .bport = bport, .protocol = t->protocol,
				 .family = t->family };
	addr4_store(rk.caddr, src);
	addr4_store(rk.baddr, backend);
	struct lb_rev_value rv = { .vport = t->dport };
	__builtin_memcpy(rv.vaddr, t->daddr, 16);
	__builtin_memcpy(rv.client, t->saddr, 16);
	struct lb_rev_value *old = bpf_map_lookup_elem(&isth_lbrev_v1, &rk);
	if (!old || addr4(old->vaddr) != vip || old->vport != rv.vport)
		bpf_map_update_elem(&isth_lbrev_v1, &rk, &rv, BPF_ANY);

	if (nat4_side(skb, 0, vip, backend, t->dport, bport, t->protocol) < 0)
		return LB_REJECT;
	if (hairpin && nat4_side(skb, 1, client, src, t->sport, t->sport, t->protocol) < 0)
		return LB_REJECT;
	addr4_store(t->daddr, backend);
	addr4_store(t->saddr, src);
	t->dport = bport;
	t->policy_port = bport;
	return LB_TRANSLATED;
}

/* Forgets the backend of a connection that policy refused, so a retry is balanced again. */
static __always_inline void lb_forget(const struct tuple *orig)
{
	struct lb_ct_key ck = { .cport = orig->sport, .vport = orig->dport,
				.protocol = orig->protocol, .family = orig->family };
	__builtin_memcpy(ck.client, orig->saddr, 16);
	__builtin_memcpy(ck.vaddr, orig->daddr, 16);
	bpf_map_delete_elem(&isth_lbct_v1, &ck);
}

/* A new connection that is not to a frontend but has the same wire tuple as an earlier translated
 * one (the client reused its port, now straight to the backend): its replies must not be
 * translated back to the frontend. */
static __always_inline void lb_forget_rev(const struct tuple *t)
{
	if (t->family != ISTHMUS_AF_INET || (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP))
		return;
	struct lb_rev_key rk = { .cport = t->sport, .bport = t->dport, .protocol = t->protocol,
				 .family = t->family };
	__builtin_memcpy(rk.caddr, t->saddr, 16);
	__builtin_memcpy(rk.baddr, t->daddr, 16);
	bpf_map_delete_elem(&isth_lbrev_v1, &rk);
}

/* A reply of a translated connection: source back to the frontend (and, for hairpin, the
 * destination back to the client). Only while the connection's lbct entry is live. */
static __always_inline void lb_rev_nat(struct __sk_buff *skb, const struct tuple *t, __u64 now)
{
	if (t->family != ISTHMUS_AF_INET || t->icmp_error ||
	    (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP))
		return;
	struct lb_rev_key rk = { .cport = t->dport, .bport = t->sport, .protocol = t->protocol,
				 .family = t->family };
	__builtin_memcpy(rk.caddr, t->daddr, 16);
	__builtin_memcpy(rk.baddr, t->saddr, 16);
	struct lb_rev_value *rv = bpf_map_lookup_elem(&isth_lbrev_v1, &rk);
	if (!rv)
		return;
	struct lb_ct_key ck = { .cport = t->dport, .vport = rv->vport, .protocol = t->protocol,
				.family = t->family };
	__builtin_memcpy(ck.client, rv->client, 16);
	__builtin_memcpy(ck.vaddr, rv->vaddr, 16);
	struct lb_ct_value *cv = bpf_map_lookup_elem(&isth_lbct_v1, &ck);
	if (!cv || cv->expires_ns < now)
		return;
	if (t->tcp_flags & (TCP_FIN | TCP_RST))
		cv->expires_ns = now + CT_LIFETIME_CLOSING;
	__be32 vip = addr4(rv->vaddr), client = addr4(rv->client);
	nat4_side(skb, 1, addr4(t->saddr), vip, t->sport, rv->vport, t->protocol);
	if (client != addr4(t->daddr))
		nat4_side(skb, 0, addr4(t->daddr), client, t->dport, t->dport, t->protocol);
}

/* A hairpin reply arriving at the pod (to_pod): from the frontend to a client whose live
 * connection is a hairpin one; from_pod already checked it against conntrack. */
static __always_inline int lb_hairpin_reply(const struct tuple *t, __u64 now)
{
	if (t->family != ISTHMUS_AF_INET || (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP))
		return 0;
	struct lb_ct_key ck = { .cport = t->dport, .vport = t->sport, .protocol = t->protocol,
				.family = t->family };
	__builtin_memcpy(ck.client, t->daddr, 16);
	__builtin_memcpy(ck.vaddr, t->saddr, 16);
	struct lb_ct_value *cv = bpf_map_lookup_elem(&isth_lbct_v1, &ck);
	if (!cv || cv->expires_ns < now)
		return 0;
	struct lb_backend *b = bpf_map_lookup_elem(&isth_lbbe_v1, &cv->backend_id);
	return b && addr4(b->addr) == addr4(t->daddr);
}

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 c = (__u32)sum;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

struct icmp_reject {
	__u8 ip[20];
	__u8 icmp[8];
	__u8 quoted_ip[20];
	__u8 quoted_l4[20];
};

/* Turns the packet into ICMP port unreachable from the frontend and hands it to the pod,
 * quoting `quote` bytes of L4 (TCP: 20, since a checksum-offloaded skb cannot be cut inside the
 * header the checksum covers; UDP: 8). Returns the tc verdict, or -1 (then drop the packet). */
static __always_inline int lb_reject_icmp_quoting(struct __sk_buff *skb, const __u32 quote)
{
	struct icmp_reject r = {};
	__u8 eth[ETH_HLEN], swapped[ETH_HLEN];
	const __u32 len = 48 + quote; /* ICMP packet: ip 20 + icmp 8 + quoted ip 20 + quote */
	if (bpf_skb_load_bytes(skb, 0, eth, ETH_HLEN) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, r.quoted_ip, 20) < 0 || (r.quoted_ip[0] & 0x0f) != 5 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 20, r.quoted_l4, quote) < 0)
		return -1;
	__builtin_memcpy(swapped, eth + 6, 6);
	__builtin_memcpy(swapped + 6, eth, 6);
	__builtin_memcpy(swapped + 12, eth + 12, 2);
	r.ip[0] = 0x45;
	r.ip[3] = len;
	r.ip[8] = 64;
	r.ip[9] = IPPROTO_ICMP;
	__builtin_memcpy(r.ip + 12, r.quoted_ip + 16, 4); /* from the frontend */
	__builtin_memcpy(r.ip + 16, r.quoted_ip + 12, 4); /* to the client */
	r.icmp[0] = ICMP_DEST_UNREACH;
	r.icmp[1] = 3; /* port unreachable */
	__u16 ipsum = csum_fold(bpf_csum_diff(0, 0, (__be32 *)r.ip, 20, 0));
	__builtin_memcpy(r.ip + 10, &ipsum, 2);
	__u16 icmpsum = csum_fold(bpf_csum_diff(0, 0, (__be32 *)r.icmp, len - 20, 0));
	__builtin_memcpy(r.icmp + 2, &icmpsum, 2);
	if (bpf_skb_change_tail(skb, ETH_HLEN + 20 + quote, 0) < 0 ||
	    bpf_skb_adjust_room(skb, 28, BPF_ADJ_ROOM_NET, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 0, swapped, ETH_HLEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &r, len, 0) < 0)
		return -1;
	return bpf_redirect_peer(skb->ifindex, 0);
}

static __always_inline int lb_reject_icmp(struct __sk_buff *skb, __u8 protocol)
{
	if (protocol == IPPROTO_TCP)
		return lb_reject_icmp_quoting(skb, 20);
	return lb_reject_icmp_quoting(skb, 8);
}
