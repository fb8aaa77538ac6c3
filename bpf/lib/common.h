/* Constants shared by the pod programs and mirrored in agent/datapath/constants.ts (keep them in step). */
#pragma once
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ISTHMUS_AF_INET 2
#define ISTHMUS_AF_INET6 10

/* Reserved identities (DESIGN.md). */
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2
/* Prefix-class ids start above every 24-bit identity (agent/policy/entry.ts PREFIX_CLASS_BASE). */
#define PREFIX_CLASS_BASE (1u << 24)
#define ANY_PEER 0

/* Traffic direction relative to the endpoint: ingress = towards the pod. */
#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* endpoint_value.flags */
#define EP_F_INGRESS_ENFORCED (1 << 0)
#define EP_F_EGRESS_ENFORCED (1 << 1)

/* policy_value.flags */
#define POLICY_F_DENY (1 << 0)

/* ipcache_value.flags */
#define IPCACHE_F_ENCRYPT (1 << 0)

/* flow_event.verdict */
#define VERDICT_FORWARDED 1
#define VERDICT_DROPPED 2

/* flow_event.drop_reason */
#define DROP_NONE 0
#define DROP_POLICY_DENY 1    /* an explicit deny entry matched */
#define DROP_POLICY_DEFAULT 2 /* direction enforced and no allow entry matched */
#define DROP_UNKNOWN_ENDPOINT 3 /* source (from pod) or destination (to pod) is not this interface's endpoint */
#define DROP_UNSUPPORTED_L3 4
#define DROP_MALFORMED 5
#define DROP_NO_SERVICE_BACKEND 6 /* a frontend with no backend: answered with ICMP port unreachable */

/* flow_event.flags */
#define EVENT_F_NEW_CONNECTION (1 << 0)
#define EVENT_F_REPLY (1 << 1)
#define EVENT_F_ICMP_ERROR (1 << 2)

/* Source address of hairpin connections (a pod reaching itself through a service): the pod's
 * own address as source would be a martian, so it sees this one (Cilium's IPv4 loopback). */
#define LB_HAIRPIN_IPV4 0xa9fe2a01 /* 169.254.42.1, host order */
