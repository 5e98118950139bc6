// A Node tool as any build tool would be: it reports through the runner-aware
// npm package, whichever runner (Node or Rust) started it.
import { addOutput, addValue, fetchEnv, ignoreInput, isConnected } from 'runner-aware';

ignoreInput('node_modules/.cache/example-tool');
addOutput('dist');
addValue('example-tool-version', '1.0.0');
const mode = fetchEnv('NODE_ENV') ?? 'development';
process.stdout.write(`tool: connected=${isConnected()} mode=${mode}\n`);
