/* Every map of the pod datapath, BTF-defined and pinned by name under the agent's pin root.
 * The _vN suffix is the layout version: a change to a struct below bumps it, so an agent finds
 * an old pinned map under the old name and can migrate it. Names stay <= 15 chars (kernel limit).
 * Each struct is mirrored field by field by a codec in agent/datapath/. */
#pragma once
#include "common.h"

/* ipcache: longest-prefix match of an address to its identity. prefixlen = 32 + address bits
 * (family and pad are always matched). Codec: agent/datapath/ipcache-map.ts */
struct ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16]; /* IPv4 in the first 4 bytes, rest zero */
};

struct ipcache_value {
	__u32 identity;
	__u8 flags; /* IPCACHE_F_* */
	__u8 host_family;
	__u16 pad;
	__u8 host_addr[16]; /* node (tunnel endpoint) hosting the address; zero if none */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_ipcache_v1 SEC(".maps");

/* endpoints: local pod address -> endpoint. Codec: agent/datapath/endpoint-map.ts */
struct endpoint_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct endpoint_value {
	__u32 endpoint_id;
	__u32 ifindex; /* host side of the pod's veth: packets of this address must use it */
	__u32 identity;
	__u8 flags; /* EP_F_* */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_endpts_v1 SEC(".maps");

/* policy: per-endpoint allow/deny, LPM over (endpoint, peer, direction) [72 bits, always full],
 * then protocol [8 bits] then destination port [0..16 bits, network order] — the layout of
 * agent/policy/entry.ts. Codec: agent/datapath/policy-map.ts */
struct policy_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u32 peer; /* identity, ANY_PEER, or prefix class */
	__u8 direction;
	__u8 protocol;
	__be16 dport;
};

#define POLICY_PREFIX_BASE 72
#define POLICY_PREFIX_FULL 96

struct policy_value {
	__u8 flags; /* POLICY_F_* */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_policy_v1 SEC(".maps");

/* prefixes: per-endpoint CIDR classes (ipBlock / CIDR rules). prefixlen = 64 + address bits.
 * Codec: agent/datapath/prefix-map.ts */
struct prefix_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u8 direction;
	__u8 family;
	__u16 pad;
	__u8 addr[16];
};

#define PREFIX_PREFIX_BASE 64

struct prefix_value {
	__u32 class_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct prefix_key);
	__type(value, struct prefix_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_prefix_v1 SEC(".maps");

/* ct: connections in their original direction (saddr = initiator), per endpoint and direction.
 * ICMP echo: sport = echo id, dport = 0. Codec: agent/datapath/ct-map.ts */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 endpoint_id;
	__u8 protocol;
	__u8 family;
	__u8 direction; /* DIR_EGRESS: the endpoint initiated; DIR_INGRESS: the peer did */
	__u8 pad;
};

#define CT_F_SEEN_REPLY (1 << 0)
#define CT_F_CLOSING (1 << 1)

struct ct_value {
	__u64 expires_ns; /* bpf_ktime_get_ns() clock; an expired entry is treated as absent */
	__u64 packets_orig;
	__u64 packets_reply;
	__u32 peer_identity;
	__u8 flags; /* CT_F_* */
	__u8 tcp_flags_seen;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_ct_v1 SEC(".maps");

/* events: one flow_event per new connection and per drop. Codec: agent/datapath/events.ts */
struct flow_event {
	__u64 timestamp_ns;
	__u32 endpoint_id;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport; /* ICMP: sport = echo id, dport = type << 8 | code (network order) */
	__u8 protocol;
	__u8 family;
	__u8 direction;
	__u8 verdict;    /* VERDICT_* */
	__u8 drop_reason; /* DROP_* */
	__u8 tcp_flags;
	__u8 flags; /* EVENT_F_* */
	__u8 pad;
	__u32 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_events_v1 SEC(".maps");

/* counters per endpoint: [direction][0 forwarded, 1 dropped]. Codec: agent/datapath/counter-map.ts */
struct endpoint_counters {
	__u64 packets[2][2];
	__u64 bytes[2][2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32); /* endpoint id */
	__type(value, struct endpoint_counters);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_counts_v1 SEC(".maps");

/* datapath-wide statistics, one slot per STAT_* index. Codec: agent/datapath/stats-map.ts */
#define STAT_EVENTS_LOST 0 /* flow events not delivered: the ring buffer was full */
#define STAT_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_stats_v1 SEC(".maps");

/* ---- Service load-balancing (bpf/lib/lb.h). Codecs: agent/datapath/lb-maps.ts ---- */

/* services: frontend ClusterIP:port/protocol -> service. */
struct lb_svc_key {
	__u8 addr[16];
	__be16 port;
	__u8 protocol;
	__u8 family;
};

#define LB_SVC_F_HAIRPIN_OK (1 << 0) /* reserved: hairpin is always allowed today */

struct lb_svc_value {
	__u32 service_id;
	__u16 count; /* backend slots 0..count-1 in isth_lbslot_v1; 0 = reject new connections */
	__u8 flags;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_lbsvc_v1 SEC(".maps");

/* slots: (service, slot) -> backend id; selection picks a slot of a new connection. */
struct lb_slot_key {
	__u32 service_id;
	__u32 slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_slot_key);
	__type(value, __u32); /* backend id */
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_lbslot_v1 SEC(".maps");

/* backends: stable backend id -> address:port. A connection whose backend id is gone is
 * re-balanced; any other change leaves it on its backend. */
struct lb_backend {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_lbbe_v1 SEC(".maps");

/* lbct: a client's connection to a frontend -> the backend it was given. */
struct lb_ct_key {
	__u8 client[16];
	__u8 vaddr[16];
	__be16 cport;
	__be16 vport;
	__u8 protocol;
	__u8 family;
	__u16 pad;
};

#define LB_CT_F_HAIRPIN (1 << 0)

struct lb_ct_value {
	__u64 expires_ns;
	__u32 backend_id;
	__u32 service_id;
	__u8 flags; /* LB_CT_F_* */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_ct_key);
	__type(value, struct lb_ct_value);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_lbct_v1 SEC(".maps");

/* revnat: a reply as it leaves the backend (backend -> client as seen on the wire, the client
 * being the hairpin address for hairpin connections) -> the frontend to answer from. */
struct lb_rev_key {
	__u8 caddr[16];
	__u8 baddr[16];
	__be16 cport;
	__be16 bport;
	__u8 protocol;
	__u8 family;
	__u16 pad;
};

struct lb_rev_value {
	__u8 vaddr[16];
	__u8 client[16]; /* the real client (differs from caddr for hairpin) */
	__be16 vport;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_rev_key);
	__type(value, struct lb_rev_value);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_lbrev_v1 SEC(".maps");
