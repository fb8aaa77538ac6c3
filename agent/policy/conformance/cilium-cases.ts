import type { ConformanceCase } from './model.ts';
export const CILIUM_CASES: ConformanceCase[] = [];
