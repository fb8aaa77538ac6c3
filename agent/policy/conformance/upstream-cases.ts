// The upstream Kubernetes NetworkPolicy e2e truth tables (network_policy.go), re-encoded as data:
// same pods, same policies, same expected matrices, one step per policy change. Names match
// UPSTREAM_TESTS exactly. Split in two files only for size.
import type { ConformanceCase } from './model.ts';
import { UPSTREAM_CASES_1 } from './upstream-cases-1.ts';
import { UPSTREAM_CASES_2 } from './upstream-cases-2.ts';

export const UPSTREAM_CASES: ConformanceCase[] = [...UPSTREAM_CASES_1, ...UPSTREAM_CASES_2];
