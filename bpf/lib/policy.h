/* Policy verdict exactly as agent/policy/entry.ts defines it: identity, prefix class and
 * ANY_PEER lookups in the LPM policy map; deny wins; default deny when the direction is enforced. */
#pragma once
#include "maps.h"
#include "parse.h"

static __always_inline __u32 ipcache_identity(const __u8 *addr, __u8 family)
{
	struct ipcache_key k = {};
	k.prefixlen = 32 + (family == ISTHMUS_AF_INET ? 32 : 128);
	k.family = family;
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&isth_ipcache_v1, &k);
	return v ? v->identity : IDENTITY_WORLD;
}

static __always_inline __u32 prefix_class(__u32 ep, __u8 dir, const __u8 *addr, __u8 family)
{
	struct prefix_key k = {};
	k.prefixlen = PREFIX_PREFIX_BASE + (family == ISTHMUS_AF_INET ? 32 : 128);
	k.endpoint_id = ep;
	k.direction = dir;
	k.family = family;
	__builtin_memcpy(k.addr, addr, 16);
	struct prefix_value *v = bpf_map_lookup_elem(&isth_prefix_v1, &k);
	return v ? v->class_id : 0;
}

#define MATCH_NONE 0
#define MATCH_ALLOW 1
#define MATCH_DENY 2

static __always_inline int policy_match(__u32 ep, __u8 dir, __u32 peer, __u8 proto, __be16 port)
{
	struct policy_key k = {
		.prefixlen = POLICY_PREFIX_FULL,
		.endpoint_id = ep,
		.peer = peer,
		.direction = dir,
		.protocol = proto,
		.dport = port,
	};
	struct policy_value *v = bpf_map_lookup_elem(&isth_policy_v1, &k);
	if (!v)
		return MATCH_NONE;
	return (v->flags & POLICY_F_DENY) ? MATCH_DENY : MATCH_ALLOW;
}

/* Returns DROP_NONE when allowed, else the drop reason. */
static __always_inline int policy_verdict(__u32 ep, __u8 dir, __u32 peer_id, const __u8 *peer_addr,
					  const struct tuple *t)
{
	int by_id = policy_match(ep, dir, peer_id, t->protocol, t->policy_port);
	__u32 cls = prefix_class(ep, dir, peer_addr, t->family);
	int by_class = cls ? policy_match(ep, dir, cls, t->protocol, t->policy_port) : MATCH_NONE;
	int by_any = policy_match(ep, dir, ANY_PEER, t->protocol, t->policy_port);
	if (by_id == MATCH_DENY || by_class == MATCH_DENY || by_any == MATCH_DENY)
		return DROP_POLICY_DENY;
	if (by_id == MATCH_ALLOW || by_class == MATCH_ALLOW || by_any == MATCH_ALLOW)
		return DROP_NONE;
	return DROP_POLICY_DEFAULT;
}
