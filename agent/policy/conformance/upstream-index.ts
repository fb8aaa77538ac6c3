// Every truth-table test of kubernetes/kubernetes test/e2e/network/netpol/network_policy.go
// (read at commit 008b3652959ca58af8be3fb5b6ecfe9ae7638282), by context and name. Each must be
// either encoded in upstream-cases.ts or listed in UPSTREAM_EXCLUDED with a reason; a test checks
// both lists against this one so no case silently drops out. The legacy suite
// (network_legacy.go) is not a truth-table suite and is out of scope.

export const TCP = 'NetworkPolicy between server and client';
export const UDP = 'NetworkPolicy between server and client using UDP';
export const SCTP = 'NetworkPolicy between server and client using SCTP';

const TCP_TESTS = [
  "should support a 'default-deny-ingress' policy",
  "should support a 'default-deny-all' policy",
  'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
  'should enforce policy to allow ingress traffic for a target',
  'should enforce policy to allow ingress traffic from pods in all namespaces',
  'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
  'should enforce policy based on PodSelector with MatchExpressions',
  'should enforce policy based on NamespaceSelector with MatchExpressions',
  'should enforce policy based on PodSelector or NamespaceSelector',
  'should enforce policy based on PodSelector and NamespaceSelector',
  'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
  'should enforce policy based on any PodSelectors',
  'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
  'should enforce policy based on Ports',
  'should enforce multiple, stacked policies with overlapping podSelectors',
  'should support allow-all policy',
  'should allow ingress access on one named port',
  'should allow ingress access from namespace on one named port',
  'should allow egress access on one named port',
  'should enforce updated policy',
  'should allow ingress access from updated namespace',
  'should allow ingress access from updated pod',
  'should deny ingress from pods on other namespaces',
  'should deny ingress access to updated pod',
  'should deny egress from pods based on PodSelector',
  'should deny egress from all pods in a namespace',
  'should work with Ingress, Egress specified together',
  'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
  'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
  'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
  'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
  'should enforce multiple egress policies with egress allow-all policy taking precedence',
  'should stop enforcing policies after they are deleted',
  'should allow egress access to server in CIDR block',
  'should enforce except clause while egress access to server in CIDR block',
  'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
  'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
  "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
  "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
  'should not allow access by TCP when a policy specifies only UDP',
  'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
  'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
];

const PROTO_TESTS = [
  "should support a 'default-deny-ingress' policy",
  'should enforce policy based on Ports',
  'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
];

/** Number of `f.It(` truth-table tests in the upstream file. */
export const UPSTREAM_TEST_COUNT = 48;

export const UPSTREAM_TESTS: readonly string[] = [
  ...TCP_TESTS.map((t) => `${TCP} ${t}`),
  ...PROTO_TESTS.map((t) => `${UDP} ${t}`),
  ...PROTO_TESTS.map((t) => `${SCTP} ${t}`),
];

/** Upstream tests not encoded, with the reason. Every upstream truth-table test is encoded. */
export const UPSTREAM_EXCLUDED: Readonly<Record<string, string>> = {};
