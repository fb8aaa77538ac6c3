// What the lab replays with real packets (`lab probe` must equal `policy reachability`):
// for each case and step, apply `stepSources(c, step)` to the lab clusters (pods carry
// status.podIP as planned by `podIp`; a lab assigning its own IPs must substitute them), then
// compare `lab probe` rows with `expectedRows(c, probe)` and with `policy reachability`.
export { CILIUM_CASES } from './cilium-cases.ts';
export { DEFAULT_CLUSTER, expectedRows, fullPod, podIp, stepSources } from './model.ts';
export type { CaseStep, ConformanceCase, Expectation, ProbeCheck } from './model.ts';
export { runCase } from './run.ts';
export { UPSTREAM_CASES } from './upstream-cases.ts';
export { UPSTREAM_EXCLUDED, UPSTREAM_TEST_COUNT, UPSTREAM_TESTS } from './upstream-index.ts';
