// A generated Vite app for the tracing benchmark and tests: `modules` ES
// modules in a tree of imports (each imports up to four others), a CSS file,
// an index.html and a .env file, so a build reads what a real app's does.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes the app into `dir` (created); returns `dir`. */
export function generateViteApp(dir, modules = 600) {
  mkdirSync(join(dir, 'src', 'modules'), { recursive: true });
  for (let i = 0; i < modules; i++) {
    const children = [1, 2, 3, 4].map((k) => i * 4 + k).filter((child) => child < modules);
    const imports = children.map((child) => `import { value as v${child} } from './m${child}.js';`).join('\n');
    const sum = children.map((child) => `v${child}`).join(' + ') || '0';
    writeFileSync(join(dir, 'src', 'modules', `m${i}.js`),
      `${imports}\nexport const value = ${i} + ${sum};\nexport function label() { return 'module ${i}: ' + value; }\n`);
  }
  writeFileSync(join(dir, 'src', 'style.css'), 'body { font-family: sans-serif; }\n');
  writeFileSync(join(dir, 'src', 'main.js'),
    "import './style.css';\nimport { value, label } from './modules/m0.js';\n" +
    "document.querySelector('#app').textContent = `${label()} ${value} ${import.meta.env.VITE_TITLE ?? ''} ${import.meta.env.MODE}`;\n");
  writeFileSync(join(dir, 'index.html'),
    '<!doctype html>\n<html><head><title>app</title></head><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>\n');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'generated-app', private: true, type: 'module' }, null, 2));
  return dir;
}
