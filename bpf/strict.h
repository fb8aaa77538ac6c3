/* Strict-mode filter maps (bpf/strict.c). Codecs: agent/wireguard/strict-map.ts. */
#pragma once
#include "lib/common.h"

/* flow_event.drop_reason for plaintext pod traffic stopped on the underlay. Above every DROP_*
 * of lib/common.h so the two lists cannot collide. */
#define DROP_STRICT_PLAINTEXT 64

/* isth_strict_v1 value: which pod range a prefix is. */
#define STRICT_F_LOCAL (1 << 0) /* this node's own pod CIDR (source side) */
#define STRICT_F_MESH (1 << 1)  /* any pod CIDR of the mesh (destination side) */

struct strict_key {
	__u32 prefixlen; /* address bits only */
	__u8 addr[4];    /* IPv4, network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct strict_key);
	__type(value, __u32); /* STRICT_F_* */
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_strict_v1 SEC(".maps");

/* isth_strictc_v1 slots */
#define STRICT_C_DROPPED_PKTS 0
#define STRICT_C_DROPPED_BYTES 1
#define STRICT_C_PASSED_WG 2 /* pod-range UDP to a mesh WireGuard port */
#define STRICT_C_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STRICT_C_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} isth_strictc_v1 SEC(".maps");

/* The mesh WireGuard ports (agent/wireguard/types.ts WG_PORTS). */
#define WG_PORT_PRIMARY 51871
#define WG_PORT_SECONDARY 51872
