// Constants mirrored from bpf/lib/common.h and bpf/lib/maps.h (keep them in step).

export const AF_INET = 2;
export const AF_INET6 = 10;

export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;

/** Direction byte in map keys: ingress = towards the pod (DIR_INGRESS / DIR_EGRESS). */
export const DIR_INGRESS = 0;
export const DIR_EGRESS = 1;

export const EP_F_INGRESS_ENFORCED = 1 << 0;
export const EP_F_EGRESS_ENFORCED = 1 << 1;
export const POLICY_F_DENY = 1 << 0;
export const IPCACHE_F_ENCRYPT = 1 << 0;
export const CT_F_SEEN_REPLY = 1 << 0;
export const CT_F_CLOSING = 1 << 1;

export const POLICY_PREFIX_BASE = 72;
export const PREFIX_PREFIX_BASE = 64;

/** Map names as pinned (the _vN suffix is the layout version of the struct). */
export const MapNames = {
  ipcache: 'isth_ipcache_v1',
  endpoints: 'isth_endpts_v1',
  policy: 'isth_policy_v1',
  prefixes: 'isth_prefix_v1',
  ct: 'isth_ct_v1',
  events: 'isth_events_v1',
  counters: 'isth_counts_v1',
  stats: 'isth_stats_v1',
  lbServices: 'isth_lbsvc_v1',
  lbSlots: 'isth_lbslot_v1',
  lbBackends: 'isth_lbbe_v1',
  lbCt: 'isth_lbct_v1',
  lbRevNat: 'isth_lbrev_v1',
} as const;

export const ProgramNames = { fromPod: 'from_pod', toPod: 'to_pod' } as const;

export const Verdict = { FORWARDED: 1, DROPPED: 2 } as const;

/** flow_event.drop_reason (DROP_* in bpf/lib/common.h). */
export const DropReason = {
  NONE: 0,
  POLICY_DENY: 1,
  POLICY_DEFAULT: 2,
  UNKNOWN_ENDPOINT: 3,
  UNSUPPORTED_L3: 4,
  MALFORMED: 5,
  NO_SERVICE_BACKEND: 6,
} as const;

export const DropReasonName: Record<number, string> = {
  0: 'none',
  1: 'policy-deny',
  2: 'policy-default-deny',
  3: 'unknown-endpoint',
  4: 'unsupported-l3',
  5: 'malformed',
  6: 'no-service-backend',
};

export const EVENT_F_NEW_CONNECTION = 1 << 0;

/** Source address a pod sees when it reaches itself through a service (LB_HAIRPIN_IPV4). */
export const LB_HAIRPIN_IPV4 = '169.254.42.1';
