/* Flow events (ring buffer) and per-endpoint counters. */
#pragma once
#include "maps.h"
#include "parse.h"

struct verdict_ctx {
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 direction;
	__u8 verdict;
	__u8 drop_reason;
	__u8 flags;
};

static __always_inline void emit_event(struct __sk_buff *skb, const struct tuple *t,
				       const struct verdict_ctx *vc)
{
	struct flow_event *e = bpf_ringbuf_reserve(&isth_events_v1, sizeof(*e), 0);
	if (!e) {
		__u32 slot = STAT_EVENTS_LOST;
		__u64 *lost = bpf_map_lookup_elem(&isth_stats_v1, &slot);
		if (lost)
			*lost += 1;
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->endpoint_id = vc->endpoint_id;
	e->ifindex = skb->ifindex;
	e->src_identity = vc->src_identity;
	e->dst_identity = vc->dst_identity;
	__builtin_memcpy(e->saddr, t->saddr, 16);
	__builtin_memcpy(e->daddr, t->daddr, 16);
	e->sport = t->sport;
	e->dport = t->protocol == IPPROTO_ICMP
			   ? bpf_htons((__u16)t->icmp_type << 8 | t->icmp_code)
			   : t->dport;
	e->protocol = t->protocol;
	e->family = t->family;
	e->direction = vc->direction;
	e->verdict = vc->verdict;
	e->drop_reason = vc->drop_reason;
	e->tcp_flags = t->tcp_flags;
	e->flags = vc->flags;
	e->pad = 0;
	e->len = skb->len;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void count_packet(struct __sk_buff *skb, __u32 ep, __u8 dir, int dropped)
{
	struct endpoint_counters *c = bpf_map_lookup_elem(&isth_counts_v1, &ep);
	if (!c) {
		struct endpoint_counters zero = {};
		bpf_map_update_elem(&isth_counts_v1, &ep, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&isth_counts_v1, &ep);
		if (!c)
			return;
	}
	__u32 d = dir & 1, v = dropped ? 1 : 0;
	c->packets[d][v] += 1;
	c->bytes[d][v] += skb->len;
}
