/* The pod-facing programs, attached with tc clsact on the HOST side of each pod's veth:
 *   from_pod (tc ingress): packets the pod sends; the endpoint's EGRESS policy applies.
 *   to_pod   (tc egress):  packets delivered to the pod; the endpoint's INGRESS policy applies.
 * The endpoint is found by the pod-side address and must belong to the interface (no spoofing).
 * Services (lib/lb.h): from_pod translates a frontend to a backend before policy, so policy and
 * conntrack see the backend; replies are translated back after conntrack passed them. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/events.h"
#include "lib/lb.h"
#include <linux/pkt_cls.h>

static __always_inline int drop_packet(struct __sk_buff *skb, const struct tuple *t,
				       struct verdict_ctx *vc, __u8 reason)
{
	vc->verdict = VERDICT_DROPPED;
	vc->drop_reason = reason;
	if (vc->endpoint_id)
		count_packet(skb, vc->endpoint_id, vc->direction, 1);
	emit_event(skb, t, vc);
	return TC_ACT_SHOT;
}

/* A new connection to a frontend without backends: ICMP port unreachable back to the pod. */
static __always_inline int reject_packet(struct __sk_buff *skb, const struct tuple *t,
					 struct verdict_ctx *vc)
{
	vc->verdict = VERDICT_DROPPED;
	vc->drop_reason = DROP_NO_SERVICE_BACKEND;
	count_packet(skb, vc->endpoint_id, vc->direction, 1);
	emit_event(skb, t, vc);
	int rc = lb_reject_icmp(skb, t->protocol);
	return rc < 0 ? TC_ACT_SHOT : rc;
}

static __always_inline int pass_packet(struct __sk_buff *skb, __u32 ep, __u8 dir)
{
	count_packet(skb, ep, dir, 0);
	return TC_ACT_OK;
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, __u8 dir)
{
	struct tuple t = {};
	struct verdict_ctx vc = { .direction = dir };
	int bad = parse_ipv4(skb, &t);
	const __u8 *ep_addr = dir == DIR_EGRESS ? t.saddr : t.daddr;
	const __u8 *peer_addr = dir == DIR_EGRESS ? t.daddr : t.saddr;

	struct endpoint_key ek = { .family = ISTHMUS_AF_INET };
	__builtin_memcpy(ek.addr, ep_addr, 16);
	struct endpoint_value *ep = bpf_map_lookup_elem(&isth_endpts_v1, &ek);
	if (!ep || ep->ifindex != skb->ifindex)
		return drop_packet(skb, &t, &vc, DROP_UNKNOWN_ENDPOINT);
	__u32 epid = ep->endpoint_id;
	vc.endpoint_id = epid;
	if (bad)
		return drop_packet(skb, &t, &vc, bad);

	__u8 reply_dir = dir ^ 1;
	__u64 now = bpf_ktime_get_ns();
	struct tuple orig = t;
	int lb = dir == DIR_EGRESS ? lb_translate(skb, &t, now) : LB_NONE;
	if (lb == LB_REJECT)
		return reject_packet(skb, &orig, &vc);
	if (t.icmp_error && ct_icmp_error_related(&t, epid, dir, reply_dir, now))
		return pass_packet(skb, epid, dir);

	/* A reply of a connection this endpoint's other direction allowed. */
	struct ct_key k;
	ct_key_reply(&k, &t, epid, reply_dir);
	struct ct_value *cv = ct_lookup_live(&k, now);
	if (cv) {
		ct_touch(cv, &t, now, 1);
		lb_rev_nat(skb, &t, now);
		return pass_packet(skb, epid, dir);
	}
	/* A hairpin reply, translated and checked against conntrack by this pod's from_pod. */
	if (dir == DIR_INGRESS && lb_hairpin_reply(&t, now))
		return pass_packet(skb, epid, dir);

	/* An original-direction packet: policy on every packet, so a revoked rule stops the flow.
	 * The hairpin source stands for the pod itself. */
	__u32 peer_id = dir == DIR_INGRESS && addr4(t.saddr) == bpf_htonl(LB_HAIRPIN_IPV4)
				? ep->identity
				: ipcache_identity(peer_addr, t.family);
	vc.src_identity = dir == DIR_EGRESS ? ep->identity : peer_id;
	vc.dst_identity = dir == DIR_EGRESS ? peer_id : ep->identity;
	__u8 enforced = dir == DIR_EGRESS ? EP_F_EGRESS_ENFORCED : EP_F_INGRESS_ENFORCED;
	int reason = DROP_NONE;
	if (!(dir == DIR_INGRESS && peer_id == IDENTITY_HOST) && (ep->flags & enforced))
		reason = policy_verdict(epid, dir, peer_id, peer_addr, &t);

	ct_key_orig(&k, &t, epid, dir);
	if (reason != DROP_NONE) {
		bpf_map_delete_elem(&isth_ct_v1, &k); /* its replies stop too */
		if (lb == LB_TRANSLATED)
			lb_forget(&orig);
		return drop_packet(skb, &t, &vc, reason);
	}
	if (ct_create_or_touch(&k, &t, now, peer_id)) {
		if (dir == DIR_EGRESS && lb == LB_NONE)
			lb_forget_rev(&t);
		vc.verdict = VERDICT_FORWARDED;
		vc.flags = EVENT_F_NEW_CONNECTION;
		emit_event(skb, &t, &vc);
	}
	return pass_packet(skb, epid, dir);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return handle_ipv4(skb, dir);
	struct tuple t = {};
	struct verdict_ctx vc = { .direction = dir };
	return drop_packet(skb, &t, &vc, DROP_UNSUPPORTED_L3);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
