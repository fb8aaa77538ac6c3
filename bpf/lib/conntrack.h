/* Connection tracking keyed by the original direction. Only a packet that matches an entry
 * created by an allowed packet of the original direction is a reply; everything else is checked
 * against policy as an original packet (so a forged ACK / SYN-ACK / UDP "reply" meets policy). */
#pragma once
#include "maps.h"
#include "parse.h"

#define NSEC 1000000000ULL
#define CT_LIFETIME_TCP_SYN (60 * NSEC)
#define CT_LIFETIME_TCP (21600 * NSEC)
#define CT_LIFETIME_CLOSING (10 * NSEC)
#define CT_LIFETIME_UDP (60 * NSEC)
#define CT_LIFETIME_ICMP (30 * NSEC)

static __always_inline void ct_key_orig(struct ct_key *k, const struct tuple *t, __u32 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, t->saddr, 16);
	__builtin_memcpy(k->daddr, t->daddr, 16);
	k->sport = t->sport;
	k->dport = t->dport;
	k->endpoint_id = ep;
	k->protocol = t->protocol;
	k->family = t->family;
	k->direction = dir;
	k->pad = 0;
}

/* The key of the connection this packet would be a reply of. */
static __always_inline void ct_key_reply(struct ct_key *k, const struct tuple *t, __u32 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, t->daddr, 16);
	__builtin_memcpy(k->daddr, t->saddr, 16);
	k->sport = t->dport;
	k->dport = t->sport;
	k->endpoint_id = ep;
	k->protocol = t->protocol;
	k->family = t->family;
	k->direction = dir;
	k->pad = 0;
}

static __always_inline __u64 ct_lifetime(const struct tuple *t, __u8 flags_seen, __u8 ct_flags)
{
	if (ct_flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING;
	if (t->protocol == IPPROTO_TCP)
		return (flags_seen & TCP_ACK) ? CT_LIFETIME_TCP : CT_LIFETIME_TCP_SYN;
	if (t->protocol == IPPROTO_UDP)
		return CT_LIFETIME_UDP;
	return CT_LIFETIME_ICMP;
}

static __always_inline struct ct_value *ct_lookup_live(const struct ct_key *k, __u64 now)
{
	struct ct_value *v = bpf_map_lookup_elem(&isth_ct_v1, k);
	if (!v || v->expires_ns < now)
		return 0;
	return v;
}

/* Refreshes a live entry with a packet of the given side; returns the entry's flags. */
static __always_inline void ct_touch(struct ct_value *v, const struct tuple *t, __u64 now, int reply)
{
	if (reply) {
		v->packets_reply++;
		v->flags |= CT_F_SEEN_REPLY;
	} else {
		v->packets_orig++;
	}
	v->tcp_flags_seen |= t->tcp_flags;
	if (t->tcp_flags & (TCP_FIN | TCP_RST))
		v->flags |= CT_F_CLOSING;
	__u64 expires = now + ct_lifetime(t, v->tcp_flags_seen, v->flags);
	/* a closing connection never gets its long lifetime back */
	if (!(v->flags & CT_F_CLOSING) || expires < v->expires_ns)
		v->expires_ns = expires;
}

/* Creates (or refreshes) the entry for an allowed original packet; returns 1 when it is a new
 * connection. */
static __always_inline int ct_create_or_touch(const struct ct_key *k, const struct tuple *t, __u64 now,
					      __u32 peer_identity)
{
	struct ct_value *v = ct_lookup_live(k, now);
	/* A fresh SYN on a closing entry is a new connection reusing the tuple: start over. */
	int reopen = v && (v->flags & CT_F_CLOSING) && (t->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	if (v && !reopen) {
		ct_touch(v, t, now, 0);
		return 0;
	}
	/* Only a SYN opens a TCP connection. Otherwise the endpoint's own ACKs of a flow whose entry
	 * a revoked rule removed would open a "connection" whose replies are the peer's packets,
	 * and the revoked peer would get back in. */
	if (t->protocol == IPPROTO_TCP && (t->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return 0;
	struct ct_value nv = {};
	nv.packets_orig = 1;
	nv.peer_identity = peer_identity;
	nv.tcp_flags_seen = t->tcp_flags;
	if (t->tcp_flags & (TCP_FIN | TCP_RST))
		nv.flags |= CT_F_CLOSING;
	nv.expires_ns = now + ct_lifetime(t, nv.tcp_flags_seen, nv.flags);
	bpf_map_update_elem(&isth_ct_v1, k, &nv, BPF_ANY);
	return 1;
}

/* An ICMP error relates to a tracked connection of this endpoint when its inner packet is either
 * the original direction of a connection (hook_reply_dir) or a reply of one (hook_orig_dir). */
static __always_inline int ct_icmp_error_related(const struct tuple *t, __u32 ep, __u8 orig_dir,
						 __u8 reply_dir, __u64 now)
{
	struct ct_key k = {};
	__builtin_memcpy(k.saddr, t->inner.saddr, 16);
	__builtin_memcpy(k.daddr, t->inner.daddr, 16);
	k.sport = t->inner.sport;
	k.dport = t->inner.dport;
	k.endpoint_id = ep;
	k.protocol = t->inner.protocol;
	k.family = t->family;
	k.direction = reply_dir;
	if (ct_lookup_live(&k, now))
		return 1;
	__builtin_memcpy(k.saddr, t->inner.daddr, 16);
	__builtin_memcpy(k.daddr, t->inner.saddr, 16);
	k.sport = t->inner.dport;
	k.dport = t->inner.sport;
	k.direction = orig_dir;
	return ct_lookup_live(&k, now) != 0;
}
