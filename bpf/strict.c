/* Strict mode: tc egress on the node's underlay interface. Pod-range IPv4 traffic (source in this
 * node's pod CIDR, or destination in any pod CIDR of the mesh) must leave through WireGuard, whose
 * outer header carries node addresses only; anything else with pod addresses is plaintext and is
 * dropped, counted and reported on the flow events ring. Maps and the tc filter are kernel
 * objects, so the filter holds while the agent is down. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/events.h"
#include "strict.h"
#include <linux/pkt_cls.h>

static __always_inline __u32 strict_flags(const __u8 *addr)
{
	struct strict_key k = { .prefixlen = 32 };
	__builtin_memcpy(k.addr, addr, 4);
	__u32 *f = bpf_map_lookup_elem(&isth_strict_v1, &k);
	return f ? *f : 0;
}

static __always_inline void strict_count(__u32 slot, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&isth_strictc_v1, &slot);
	if (c)
		*c += n;
}

static __always_inline int is_wireguard(const struct tuple *t)
{
	__u16 port = bpf_ntohs(t->dport);
	return t->protocol == IPPROTO_UDP && (port == WG_PORT_PRIMARY || port == WG_PORT_SECONDARY);
}

SEC("tc")
int isth_strict_egress(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct tuple t = {};
	if (parse_ipv4(skb, &t) != 0)
		return TC_ACT_OK; /* not a well-formed IPv4 packet: the kernel will not route it anyway */
	int pod_range = (strict_flags(t.saddr) & STRICT_F_LOCAL) || (strict_flags(t.daddr) & STRICT_F_MESH);
	if (!pod_range)
		return TC_ACT_OK;
	if (is_wireguard(&t)) {
		strict_count(STRICT_C_PASSED_WG, 1);
		return TC_ACT_OK;
	}
	strict_count(STRICT_C_DROPPED_PKTS, 1);
	strict_count(STRICT_C_DROPPED_BYTES, skb->len);
	struct verdict_ctx vc = {
		.direction = DIR_EGRESS,
		.verdict = VERDICT_DROPPED,
		.drop_reason = DROP_STRICT_PLAINTEXT,
	};
	emit_event(skb, &t, &vc);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
