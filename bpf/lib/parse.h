/* Packet parsing into a flat tuple. bpf_skb_load_bytes keeps the verifier simple for the
 * variable IPv4 header length and the ICMP-embedded header. */
#pragma once
#include "common.h"
#include <linux/if_ether.h>
#include <linux/in.h>

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11

struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport; /* ICMP echo: the id on the requester's side, 0 on the replier's side */
	__be16 dport;
	__u8 protocol;
	__u8 family;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 icmp_error; /* the inner tuple below is the packet this ICMP error is about */
	__be16 policy_port; /* the port policy matches: dport, or the ICMP type */
	struct {
		__u8 saddr[16];
		__u8 daddr[16];
		__be16 sport;
		__be16 dport;
		__u8 protocol;
	} inner;
};

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

static __always_inline void addr4_store(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 16);
	__builtin_memcpy(dst, &a, 4);
}

/* Reads the L4 ports at off for protocol proto. ICMP echo maps the id to a port pair so that a
 * request and its reply form reversed tuples. Returns 0 or a negative error. */
static __always_inline int parse_ports(struct __sk_buff *skb, __u32 off, __u8 proto, __be16 *sport,
				       __be16 *dport, __u8 *tcp_flags, __u8 *icmp_type, __u8 *icmp_code)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 ports[2];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return -1;
		*sport = ports[0];
		*dport = ports[1];
		if (proto == IPPROTO_TCP && tcp_flags &&
		    bpf_skb_load_bytes(skb, off + 13, tcp_flags, 1) < 0)
			return -1;
		return 0;
	}
	if (proto == IPPROTO_ICMP) {
		__u8 hdr[8];
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			return -1;
		if (icmp_type)
			*icmp_type = hdr[0];
		if (icmp_code)
			*icmp_code = hdr[1];
		__be16 id = *(__be16 *)&hdr[4];
		*sport = hdr[0] == ICMP_ECHOREPLY ? 0 : id;
		*dport = hdr[0] == ICMP_ECHOREPLY ? id : 0;
		return 0;
	}
	*sport = 0;
	*dport = 0;
	return 0;
}

/* Parses the IPv4 packet at ETH_HLEN. Returns 0, or a DROP_* reason. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct tuple *t)
{
	__u8 iph[20];
	if (bpf_skb_load_bytes(skb, ETH_HLEN, iph, sizeof(iph)) < 0)
		return DROP_MALFORMED;
	__u32 ihl = (iph[0] & 0x0f) * 4;
	if ((iph[0] >> 4) != 4 || ihl < 20)
		return DROP_MALFORMED;
	t->family = ISTHMUS_AF_INET;
	t->protocol = iph[9];
	addr4_store(t->saddr, *(__be32 *)&iph[12]);
	addr4_store(t->daddr, *(__be32 *)&iph[16]);
	/* Non-first fragments carry no L4 header: they match port-less policy only. */
	__u16 frag = ((__u16)iph[6] << 8 | iph[7]) & 0x1fff;
	if (frag)
		return 0;
	__u32 l4 = ETH_HLEN + ihl;
	if (parse_ports(skb, l4, t->protocol, &t->sport, &t->dport, &t->tcp_flags, &t->icmp_type,
			&t->icmp_code) < 0)
		return DROP_MALFORMED;
	t->policy_port = t->dport;
	if (t->protocol != IPPROTO_ICMP)
		return 0;
	t->policy_port = bpf_htons(t->icmp_type); /* ICMP rules match the type as the port, as Cilium does */
	if (t->icmp_type != ICMP_DEST_UNREACH && t->icmp_type != ICMP_TIME_EXCEEDED)
		return 0;
	/* ICMP error: the offending packet's IPv4 header and first 8 bytes follow the 8-byte header. */
	__u8 inner[20];
	__u32 ioff = l4 + 8;
	if (bpf_skb_load_bytes(skb, ioff, inner, sizeof(inner)) < 0)
		return DROP_MALFORMED;
	__u32 iihl = (inner[0] & 0x0f) * 4;
	if ((inner[0] >> 4) != 4 || iihl < 20)
		return DROP_MALFORMED;
	t->icmp_error = 1;
	t->inner.protocol = inner[9];
	addr4_store(t->inner.saddr, *(__be32 *)&inner[12]);
	addr4_store(t->inner.daddr, *(__be32 *)&inner[16]);
	if (parse_ports(skb, ioff + iihl, t->inner.protocol, &t->inner.sport, &t->inner.dport, 0, 0, 0) < 0)
		return DROP_MALFORMED;
	return 0;
}
