// Every code block of docs/*.md and of each example's README runs here
// (test/doc-blocks.ts says how each language runs), a page at a time, each in
// a fresh workspace.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describeDoc } from './doc-blocks.js';
import { root } from './helpers.js';

for (const file of readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).sort()) {
  describeDoc(`docs/${file}`);
}
for (const dir of readdirSync(join(root, 'examples')).sort()) {
  if (existsSync(join(root, 'examples', dir, 'README.md'))) describeDoc(`examples/${dir}/README.md`);
}
