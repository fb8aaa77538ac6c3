#!/usr/bin/env node
// The `isthmus` command: runs the TypeScript CLI through tsx, or the compiled one when present.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'cli', 'main.js');
if (existsSync(compiled) && !process.env.ISTHMUS_FROM_SOURCE) {
  await import(compiled);
} else {
  await import('tsx/esm');
  await import(join(root, 'cli', 'main.ts'));
}
