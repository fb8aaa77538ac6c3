// The steps of `isthmus demo`: a small application, then policies one at a time. Each step is a
// description, YAML applied with `lab kubectl`, and the probes to run after it; add steps here.

export interface DemoStep {
  title: string;
  explain: string;
  /** cluster the YAML is applied to (the demo uses the lab's first cluster) */
  cluster: string;
  yaml: string;
  /** PORT/PROTO probes run between every ordered pair of pods after the step */
  probes: string[];
}

export const DEMO_NAMESPACES = ['shop', 'tools'];
export const DEMO_PODS = ['shop/frontend', 'shop/backend', 'shop/db', 'tools/client'];
const PROBES = ['80/TCP', '8080/TCP', '5432/TCP'];

// Every pod serves every probed port, so the matrix shows policy and nothing else.
const pod = (ns: string, name: string, labels: string) => `---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${ns}
  labels: {${labels}}
spec:
  containers:
  - name: ${name}
    image: isthmus/echo
    ports:
    - {containerPort: 80, name: http, protocol: TCP}
    - {containerPort: 8080, name: api, protocol: TCP}
    - {containerPort: 5432, name: postgres, protocol: TCP}
`;

const policy = (ns: string, name: string, spec: string) => `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${spec}`;

export const DEMO_STEPS: DemoStep[] = [
  {
    title: 'A sample application',
    explain:
      'Namespace shop runs frontend, backend and db; namespace tools runs a client; every pod serves 80, 8080 and 5432. No policy yet: every pod reaches every port of every other pod.',
    cluster: 'c1',
    yaml:
      `---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: tools, labels: {team: tools}}
` +
      pod('shop', 'frontend', 'app: frontend') +
      pod('shop', 'backend', 'app: backend') +
      pod('shop', 'db', 'app: db') +
      pod('tools', 'client', 'role: client'),
    probes: PROBES,
  },
  {
    title: 'Default deny for shop',
    explain:
      'A NetworkPolicy selecting every pod of shop with no ingress rule: nothing may connect into shop any more; tools/client still accepts connections.',
    cluster: 'c1',
    yaml: policy('shop', 'default-deny-ingress', '  podSelector: {}\n  policyTypes: [Ingress]\n'),
    probes: PROBES,
  },
  {
    title: 'frontend may call backend',
    explain:
      'Ingress to backend on 8080 from pods labelled app=frontend (same namespace): only that pair opens.',
    cluster: 'c1',
    yaml: policy(
      'shop',
      'backend-from-frontend',
      `  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: frontend}}
    ports:
    - {port: 8080, protocol: TCP}
`,
    ),
    probes: PROBES,
  },
  {
    title: 'The tools client may reach frontend across namespaces',
    explain:
      'Ingress to frontend on port http from pods labelled role=client in namespaces labelled team=tools.',
    cluster: 'c1',
    yaml: policy(
      'shop',
      'frontend-from-tools-client',
      `  podSelector: {matchLabels: {app: frontend}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: tools}}
      podSelector: {matchLabels: {role: client}}
    ports:
    - {port: http, protocol: TCP}
`,
    ),
    probes: PROBES,
  },
];
