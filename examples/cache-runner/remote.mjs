// The reference runner's remote cache settings: the flags and the variables
// turbo reads (TURBO_API, TURBO_TEAM or TURBO_TEAMID, TURBO_TOKEN). The cache
// itself, its HTTP and its signing are runner-aware/runner's openCache.

import { redactUrl } from 'runner-aware/runner';

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
    return { off: `not a URL: ${redactUrl(url)}`, usage: flags.remote !== undefined };
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return { off: `not an http(s) URL: ${redactUrl(url)}`, usage: flags.remote !== undefined };
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
