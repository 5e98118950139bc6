// A Turborepo remote cache (`GET`/`PUT /v8/artifacts/:hash`, a bearer
// token, `?teamId=` or `?slug=`) as a second tier of the cache store. Every
// answer is hostile: bodies are bounded, a signed team's artifacts are
// checked against `x-artifact-tag` (HMAC-SHA256, as Turborepo signs them),
// an index line is only a hint checked by the core, and the artifact a hit
// restores must match the line that was validated, member by member.
//
// The API is a blob store keyed by a hash known before a run; a traced run's
// entry id is known only after. So a task has an index artifact (its recent
// manifests, under a hash of the task key) and one artifact per entry (the
// archive, under its id). Two runners storing at once may drop each other's
// index line: a later miss, never a wrong hit.

import { createHash } from 'node:crypto';

import { loadBinding } from './native.js';

/** Where and how to reach a remote cache. */
export interface RemoteCacheOptions {
  /** The server's base URL (`TURBO_API`). */
  url: string;
  /** A team slug, or a Vercel team id (`team_…`) (`TURBO_TEAM`, `TURBO_TEAMID`). */
  team: string;
  /** The bearer token (`TURBO_TOKEN`). Never put it on a command line. */
  token: string;
  /**
   * The team's signing key (`TURBO_REMOTE_CACHE_SIGNATURE_KEY`): uploads
   * carry an `x-artifact-tag`, and a download without a valid one is a miss.
   */
  signatureKey?: string;
  /** How long one request may take before it is given up on (once retried). Default 30000. */
  timeoutMs?: number;
  /** The largest artifact downloaded. Default 1 GiB. */
  maxArtifactBytes?: number;
}

const INDEX_FORMAT = 'runner-aware-index/1';
const MAX_INDEX_BYTES = 16 << 20;
const MAX_INDEX_ENTRIES = 32;

/** The server's base URL as messages show it: no user name, password or query. */
function shown(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  copy.search = '';
  copy.pathname = copy.pathname.replace(/\/?v8\/artifacts\/.*$/, '');
  return copy.toString().replace(/\/$/, '');
}

class RemoteError extends Error {}

/** The remote tier of a cache; after a failure it warns once and stays off for the process. */
export class RemoteCache {
  private readonly base: URL;
  private readonly query: string;
  private readonly options: RemoteCacheOptions;
  private readonly warn: (message: string) => void;
  private off = false;

  constructor(options: RemoteCacheOptions, warn: (message: string) => void) {
    if (!options || typeof options.url !== 'string' || typeof options.token !== 'string' || options.token === '' || typeof options.team !== 'string') {
      throw new TypeError('runner-aware openCache: remote must be { url, team, token, signatureKey? }');
    }
    let base: URL;
    try {
      base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
    } catch {
      throw new TypeError('runner-aware openCache: remote.url is not a URL');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('runner-aware openCache: remote.url must be http(s)');
    this.base = base;
    this.query = options.team.startsWith('team_') ? `teamId=${encodeURIComponent(options.team)}` : `slug=${encodeURIComponent(options.team)}`;
    this.options = options;
    this.warn = warn;
  }

  private url(hash: string): URL {
    const url = new URL(`v8/artifacts/${hash}?${this.query}`, this.base);
    url.username = '';
    url.password = '';
    return url;
  }

  /** One request, retried once after a pause on a network error, a timeout or a 5xx. */
  private async request(method: 'GET' | 'PUT', hash: string, body?: Buffer, limit = 0): Promise<{ status: number; body: Buffer; tag: string | null } | null> {
    if (this.off) return null;
    const url = this.url(hash);
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}` };
    if (body) {
      headers['content-type'] = 'application/octet-stream';
      if (this.options.signatureKey) {
        headers['x-artifact-tag'] = loadBinding().binding.artifactTag(this.options.signatureKey, hash, this.options.team, body);
      }
    }
    let lastError = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) await new Promise((done) => setTimeout(done, 200));
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), this.options.timeoutMs ?? 30_000);
      try {
        const response = await fetch(url, { method, headers, body: body ? new Uint8Array(body) : null, signal: abort.signal, redirect: 'error' });
        if (response.status >= 500) {
          lastError = `${method} ${shown(url)} answered ${response.status} ${response.statusText}`;
          await response.body?.cancel();
          continue;
        }
        const bytes = method === 'GET' && response.ok ? await readBounded(response, limit) : Buffer.alloc(0);
        if (method === 'PUT' || !response.ok) await response.body?.cancel().catch(() => {});
        return { status: response.status, body: bytes, tag: response.headers.get('x-artifact-tag') };
      } catch (err) {
        if (err instanceof RemoteError) {
          this.fail(`${method} ${shown(url)}: ${err.message}`);
          return null;
        }
        lastError = `${method} ${shown(url)}: ${abort.signal.aborted ? 'timed out' : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`;
      } finally {
        clearTimeout(timer);
      }
    }
    this.fail(lastError);
    return null;
  }

  private fail(message: string): void {
    this.off = true;
    this.warn(`remote cache unavailable: ${message}; going on with the local cache`);
  }

  /** A GET's body when it is there and, with a signing key, signed by the team; else null (a miss). */
  private async get(hash: string, limit: number): Promise<Buffer | null> {
    const answer = await this.request('GET', hash, undefined, limit);
    if (!answer) return null;
    if (answer.status === 404) return null;
    if (answer.status === 401 || answer.status === 403) {
      this.fail(`GET ${shown(this.url(hash))} answered ${answer.status}: the token or team is wrong`);
      return null;
    }
    if (answer.status !== 200) {
      this.fail(`GET ${shown(this.url(hash))} answered ${answer.status}`);
      return null;
    }
    const key = this.options.signatureKey;
    if (key) {
      const tag = answer.tag;
      if (!tag || !loadBinding().binding.verifyArtifactTag(key, hash, this.options.team, answer.body, tag)) {
        this.warn(`remote artifact ${hash} ${tag ? 'has a signature that does not match' : 'is not signed'}: ignored`);
        return null;
      }
    }
    return answer.body;
  }

  private indexHash(task: string): string {
    return createHash('sha256').update(`${INDEX_FORMAT}\0${task}`).digest('hex');
  }

  /** The task's manifests in the remote index, newest first, each checked by the core; malformed ones are left out. */
  async index(task: string): Promise<string[]> {
    const body = await this.get(this.indexHash(task), MAX_INDEX_BYTES);
    if (!body) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      this.warn(`the remote index of this task is not JSON: ignored`);
      return [];
    }
    const entries = (parsed as { format?: unknown; entries?: unknown }).entries;
    if ((parsed as { format?: unknown }).format !== INDEX_FORMAT || !Array.isArray(entries)) return [];
    const checked: string[] = [];
    for (const line of entries.slice(0, MAX_INDEX_ENTRIES)) {
      try {
        const manifest = loadBinding().binding.checkCacheManifest(JSON.stringify(line));
        if ((JSON.parse(manifest) as { key: { task: string } }).key.task === task) checked.push(manifest);
      } catch (err) {
        this.warn(`a remote index line was refused: ${(err as Error).message}`);
      }
    }
    return checked;
  }

  /** The archive of entry `id`, or null; at most `limit` bytes (what its manifest allows). */
  async download(id: string, limit: number): Promise<Buffer | null> {
    return this.get(id, Math.min(limit, this.options.maxArtifactBytes ?? 1 << 30));
  }

  /** Uploads an entry's archive, then adds its manifest to the task's index. */
  async upload(task: string, manifest: string, archive: Buffer): Promise<void> {
    const id = (JSON.parse(manifest) as { id: string }).id;
    if (!(await this.put(id, archive))) return;
    const lines = (await this.index(task)).filter((line) => (JSON.parse(line) as { id: string }).id !== id);
    const entries = [manifest, ...lines].slice(0, MAX_INDEX_ENTRIES).map((line) => JSON.parse(line) as unknown);
    await this.put(this.indexHash(task), Buffer.from(JSON.stringify({ format: INDEX_FORMAT, entries })));
  }

  private async put(hash: string, body: Buffer): Promise<boolean> {
    const answer = await this.request('PUT', hash, body);
    if (!answer) return false;
    if (answer.status >= 200 && answer.status < 300) return true;
    this.fail(`PUT ${shown(this.url(hash))} answered ${answer.status}${answer.status === 401 || answer.status === 403 ? ': the token or team is wrong' : ''}`);
    return false;
  }
}

/** A response body, or a RemoteError once it passes `limit` bytes. */
async function readBounded(response: Response, limit: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel();
    throw new RemoteError(`the answer of ${declared} bytes exceeds the ${limit}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) {
      await response.body.cancel().catch(() => {});
      throw new RemoteError(`the answer exceeds the ${limit}-byte limit`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
