// The reference runner's remote cache: cache-runner entries shared through
// the Turborepo remote-cache HTTP API (`GET`/`PUT /v8/artifacts/:hash` with
// `?teamId=` or `?slug=`, `Authorization: Bearer <token>`, an
// `application/octet-stream` body), which Vercel's service and open-source
// servers such as `turborepo-remote-cache` implement.
//
// That API is a content-addressed blob store keyed by a hash the client knows
// before it runs anything. The runner knows the task key (command + flags)
// before running, but an entry id only after (it covers the tools' declared
// inputs and tracked env), so a task is stored as two kinds of artifact:
//
// - one **entry** artifact per entry, under the entry id: the local entry
//   directory (entry.json, fingerprint.json, reports.json, stdout, stderr and
//   files/…) as gzipped JSON, each file base64-encoded under its path in that
//   directory. It is self-contained: a hit restores from it alone.
// - one **index** artifact per task, under sha256 of `cache-runner index/1`
//   and the task key: for each entry, newest first (at most
//   MAX_INDEX_ENTRIES), its id and the text of its entry.json,
//   fingerprint.json and reports.json. A look-up reads the index once and
//   validates every entry against the checkout without downloading any
//   outputs, then fetches the one entry that holds.
//
// Storing PUTs the entry first, then reads the index, adds the entry and PUTs
// it back. The API has no compare-and-swap, so two runners storing at once
// can each drop the other's line from the index: that costs a later hit, never
// a wrong one, because an entry is validated twice (from the index, then from
// the downloaded entry itself) exactly as a local entry is, and an index line
// whose entry is missing is a miss.
//
// What is uploaded is what the local cache holds, and that holds no plaintext
// env value: the reports and the fingerprint keep sha256 digests of env values
// and `addValue` values, and every path is relative to the working directory,
// so an entry stored from one checkout is a hit in another at another path.
// The command's stdout, stderr and output files are uploaded as they are.
//
// A remote cache is an optimisation: a network error, a timeout or a refusal
// (401/403: the token or team is wrong) is warned about once on stderr, the
// remote is off for the rest of the run, and the task goes on locally.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

/** How many entries a task's index keeps: the newest, one per distinct outcome. */
const MAX_INDEX_ENTRIES = 32;
/** A request that takes longer is given up on, and the remote with it. */
const REQUEST_TIMEOUT_MS = 60_000;
const ENTRY_FORMAT = 'cache-runner-entry/1';
const INDEX_FORMAT = 'cache-runner-index/1';
/** The files of an entry directory besides `files/…`, the archived outputs. */
const ENTRY_FILES = ['entry.json', 'fingerprint.json', 'reports.json', 'stdout', 'stderr'];

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/**
 * The remote cache settings from the runner's flags and env (`TURBO_API`,
 * `TURBO_TEAM` or `TURBO_TEAMID`, `TURBO_TOKEN`; a flag wins over its
 * variable). Returns `null` when no URL is set; `{ off }` with the reason when
 * the remote cannot be used (`usage` is true when the reason is a bad
 * `--remote`, a usage error); else `{ url, team, token }`. `--team` and
 * `TURBO_TEAM` are a slug, as for turbo, unless they look like a Vercel team id
 * (`team_…`); `TURBO_TEAMID` is always an id.
 */
export function remoteSettings(flags, env) {
  const pick = (...values) => values.find((value) => value !== undefined && value !== '');
  const url = pick(flags.remote, env.TURBO_API);
  if (url === undefined) return null;
  let base;
  try {
    base = new URL(url);
  } catch {
    return { off: `not a URL: ${url}`, usage: flags.remote !== undefined };
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return { off: `not an http(s) URL: ${url}`, usage: flags.remote !== undefined };
  const token = pick(flags.token, env.TURBO_TOKEN);
  // Forked pull requests run CI without secrets: no token means local only, not a failed build.
  if (token === undefined) return { off: 'no token (--token or TURBO_TOKEN)' };
  const slug = pick(flags.team, env.TURBO_TEAM);
  const teamId = pick(env.TURBO_TEAMID);
  let team = {};
  if (slug !== undefined) team = slug.startsWith('team_') ? { teamId: slug } : { slug };
  else if (teamId !== undefined) team = { teamId };
  return { url: base, team, token };
}

/** A remote that has failed: the runner's task goes on without it. */
class RemoteUnavailable extends Error {}

/** The HTTP client of one run: every method resolves, never rejects; a failure turns the remote off. */
export class RemoteCache {
  #url;
  #team;
  #token;
  #down = false;
  #indexes = new Map();

  constructor({ url, team, token }) {
    this.#url = url;
    this.#team = team;
    this.#token = token;
  }

  /** The task's remote entries, newest first: `{ id, createdAt, entry, fingerprint, reports }` with the three as JSON text. */
  async entries(taskKey) {
    if (!this.#indexes.has(taskKey)) this.#indexes.set(taskKey, await this.#guard([], () => this.#readIndex(taskKey)));
    return this.#indexes.get(taskKey);
  }

  /**
   * Downloads entry `id` and writes its files into `dir` (which must not
   * exist). Returns false when the remote does not have it or is off.
   */
  async fetchEntry(id, dir) {
    return this.#guard(false, async () => {
      const body = await this.#request('GET', id);
      if (body === null) return false;
      let files;
      try {
        files = unbundleEntry(body, id);
      } catch (err) {
        // A bad artifact is a miss: it may be another client's blob under the same hash.
        process.stderr.write(`cache-runner: warning: remote entry ${id} ignored: ${err.message}\n`);
        return false;
      }
      for (const [name, bytes] of files) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), bytes);
      }
      return true;
    });
  }

  /** Uploads the local entry directory `dir` as entry `id` of the task, then adds it to the task's index. */
  async upload(taskKey, id, dir) {
    await this.#guard(undefined, async () => {
      await this.#request('PUT', id, bundleEntry(dir, id));
      const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8');
      const line = { id, createdAt: JSON.parse(read('entry.json')).createdAt,
        entry: read('entry.json'), fingerprint: read('fingerprint.json'), reports: read('reports.json') };
      // Read again right before writing, so the lost-race window is one round trip.
      const others = (await this.#readIndex(taskKey)).filter((other) => other.id !== id);
      await this.#writeIndex(taskKey, [line, ...others]);
    });
  }

  /** Removes entry `id` from the task's index (the API cannot delete the entry itself). */
  async forget(taskKey, id) {
    await this.#guard(undefined, async () => {
      const entries = await this.#readIndex(taskKey);
      if (entries.some((entry) => entry.id === id)) await this.#writeIndex(taskKey, entries.filter((entry) => entry.id !== id));
    });
  }

  async #readIndex(taskKey) {
    const body = await this.#request('GET', indexHash(taskKey));
    if (body === null) return [];
    try {
      const index = JSON.parse(gunzipSync(body).toString('utf8'));
      if (index.format !== INDEX_FORMAT || index.task !== taskKey || !Array.isArray(index.entries)) throw new Error(`not a ${INDEX_FORMAT} of this task`);
      return index.entries.filter((line) => /^[0-9a-f]{64}$/.test(line?.id) && typeof line.createdAt === 'number'
        && ['entry', 'fingerprint', 'reports'].every((name) => typeof line[name] === 'string'));
    } catch (err) {
      // Overwritten by the next store; until then the task has no remote entries.
      process.stderr.write(`cache-runner: warning: remote index of this task ignored: ${err.message}\n`);
      return [];
    }
  }

  async #writeIndex(taskKey, entries) {
    const sorted = entries.sort((a, b) => b.createdAt - a.createdAt).slice(0, MAX_INDEX_ENTRIES);
    await this.#request('PUT', indexHash(taskKey), gzipSync(JSON.stringify({ format: INDEX_FORMAT, task: taskKey, entries: sorted })));
    this.#indexes.set(taskKey, sorted);
  }

  /** The body of a GET (null on 404), nothing for a PUT; throws RemoteUnavailable on anything else. */
  async #request(method, hash, body) {
    const url = new URL(`v8/artifacts/${hash}`, this.#url.href.endsWith('/') ? this.#url : `${this.#url.href}/`);
    for (const [name, value] of Object.entries(this.#team)) url.searchParams.set(name, value);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body ? { 'content-type': 'application/octet-stream' } : {}) },
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new RemoteUnavailable(`${method} ${this.#url.origin}: ${err.cause?.message ?? err.message}`);
    }
    if (method === 'GET' && response.status === 404) return null;
    if (response.ok) return method === 'GET' ? Buffer.from(await response.arrayBuffer()) : undefined;
    const said = (await response.text().catch(() => '')).slice(0, 200).trim();
    const why = response.status === 401 || response.status === 403 ? ': the token or team is wrong (--token, --team)' : '';
    throw new RemoteUnavailable(`${method} ${this.#url.origin} answered ${response.status} ${response.statusText}${why}${said ? ` (${said})` : ''}`);
  }

  /** Runs `action`; on a remote failure warns once, turns the remote off and returns `fallback`. */
  async #guard(fallback, action) {
    if (this.#down) return fallback;
    try {
      return await action();
    } catch (err) {
      if (!(err instanceof RemoteUnavailable)) throw err;
      this.#down = true;
      process.stderr.write(`cache-runner: remote cache unavailable: ${err.message}; going on with the local cache\n`);
      return fallback;
    }
  }
}

/** The index artifact's hash: derived from the task key, in a namespace of its own. */
function indexHash(taskKey) {
  return sha256(`${INDEX_FORMAT}\0${taskKey}`);
}

/** Every file under `dir`, by its `/`-separated path relative to `dir`. */
function entryFiles(dir, prefix = '') {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((dirent) => {
    const name = prefix ? `${prefix}/${dirent.name}` : dirent.name;
    return dirent.isDirectory() ? entryFiles(dir, name) : [name];
  });
}

/** The entry directory `dir` as one artifact. */
export function bundleEntry(dir, id) {
  const files = Object.fromEntries(entryFiles(dir).sort().map((name) => [name, fs.readFileSync(path.join(dir, ...name.split('/'))).toString('base64')]));
  return gzipSync(JSON.stringify({ format: ENTRY_FORMAT, id, files }));
}

/** A path an entry may hold: one of ENTRY_FILES or under files/, with no way out of the directory. */
function isEntryPath(name) {
  if (ENTRY_FILES.includes(name)) return true;
  const parts = name.split('/');
  return parts[0] === 'files' && parts.length > 1 && parts.every((part) => part !== '' && part !== '.' && part !== '..' && !/[\\:\0]/.test(part));
}

/**
 * The files of an entry artifact, checked: a remote blob is not trusted to
 * name paths, so every path must stay inside the entry directory and every
 * output it lists must be there, inside the working directory.
 */
export function unbundleEntry(body, id) {
  const bundle = JSON.parse(gunzipSync(body).toString('utf8'));
  if (bundle?.format !== ENTRY_FORMAT || bundle.id !== id || typeof bundle.files !== 'object') throw new Error(`not a ${ENTRY_FORMAT} with id ${id}`);
  const files = new Map();
  for (const [name, data] of Object.entries(bundle.files)) {
    if (!isEntryPath(name) || typeof data !== 'string') throw new Error(`bad path ${JSON.stringify(name)}`);
    files.set(name, Buffer.from(data, 'base64'));
  }
  for (const name of ENTRY_FILES) if (!files.has(name)) throw new Error(`no ${name}`);
  const { outputs } = JSON.parse(files.get('entry.json').toString('utf8'));
  if (!Array.isArray(outputs)) throw new Error('entry.json has no outputs');
  for (const output of outputs) {
    if (typeof output !== 'string' || !isEntryPath(`files/${output}`) || !files.has(`files/${output}`)) throw new Error(`bad output ${JSON.stringify(output)}`);
  }
  return files;
}
