// The syntax check of an env glob, in JavaScript: a runner compiles globs with
// the Rust core (globset, `*` matching any character, `\` escaping), and a tool
// must learn of a glob the core would reject whether or not a runner is
// listening, without loading native code. This follows globset's parser rule
// for rule and gives its reasons word for word; test/env-glob.test.ts holds it
// to the addon's own answer. src-rs/core/src/env/syntax.rs is the same check
// for Rust tools built with the core's `client` feature alone.

/** The longest env glob the Rust core compiles, in UTF-8 bytes. */
export const MAX_GLOB_BYTES = 4096;

/** globset's limit on `{` groups open at once. */
const MAX_ALTERNATES_DEPTH = 100;

/**
 * Where the last range of a POSIX class (`[[:alpha:]]`) starts: a range that
 * follows the class in the same brackets (`[[:alpha:]-z]`) extends it.
 */
const POSIX_CLASS_LAST_START: Record<string, number> = {
  alnum: 0x61,
  alpha: 0x61,
  blank: 0x20,
  cntrl: 0x7f,
  digit: 0x30,
  graph: 0x21,
  lower: 0x61,
  print: 0x20,
  punct: 0x7b,
  space: 0x20,
  upper: 0x41,
  xdigit: 0x61,
};

const UNCLOSED_CLASS = "unclosed character class; missing ']'";

/**
 * Why the Rust core rejects `glob`, in its words, or `undefined` when it
 * compiles. Only `[`, `{`, `}` and `\` can make a glob invalid, so the scan
 * goes by UTF-16 unit and reads code points only inside a class.
 */
export function globError(glob: string): string | undefined {
  const bytes = Buffer.byteLength(glob, 'utf8');
  if (bytes > MAX_GLOB_BYTES) return `glob of ${bytes} bytes exceeds the ${MAX_GLOB_BYTES}-byte limit`;
  let open = 0;
  for (let i = 0; i < glob.length; ) {
    const c = glob.charCodeAt(i++);
    if (c === 0x5c) {
      // `\x` is the literal `x`; a second unit of an escaped pair is not special either.
      if (i === glob.length) return "dangling '\\'";
      i++;
    } else if (c === 0x5b) {
      const end = classEnd(glob, i);
      if (typeof end === 'string') return end;
      i = end;
    } else if (c === 0x7b) {
      if (open === MAX_ALTERNATES_DEPTH) return 'alternate groups nested too deeply';
      open++;
    } else if (c === 0x7d) {
      if (open === 0) return "unopened alternate group; missing '{' (maybe escape '}' with '[}]'?)";
      open--;
    }
  }
  return open === 0 ? undefined : "unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)";
}

/**
 * The index after the `]` closing the class whose `[` ends before `i`, or the
 * reason the class is invalid. A `]` or `-` first is literal, as is a `-`
 * last; `\` is not special inside brackets; ranges compare code points (a lone
 * surrogate reaches the core as U+FFFD).
 */
function classEnd(glob: string, i: number): number | string {
  if (glob[i] === '!' || glob[i] === '^') i++;
  let first = true;
  let inRange = false;
  // The start of the class's last range, which a `-x` that follows extends.
  let lastStart = 0;
  for (;;) {
    if (i >= glob.length) return UNCLOSED_CLASS;
    let c = glob.codePointAt(i) as number;
    i += c > 0xffff ? 2 : 1;
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c === 0x5d && !first) return i;
    if (c === 0x2d && !first) {
      if (inRange && c < lastStart) return rangeError(lastStart, c);
      inRange = !inRange;
    } else if (c === 0x5b && !inRange && glob.charCodeAt(i) === 0x3a) {
      const posix = posixClass(glob, i + 1);
      if (posix) {
        i = posix.end;
        lastStart = posix.lastStart;
      } else {
        lastStart = 0x5b;
      }
    } else if (inRange) {
      if (c < lastStart) return rangeError(lastStart, c);
      inRange = false;
    } else {
      lastStart = c;
    }
    first = false;
  }
}

/**
 * A POSIX class name whose `[:` ends before `i`: up to 8 lowercase letters and
 * `:]`. `null` when there is none, and the class is a literal `[`. An unknown
 * name between `[:` and `:]` is still consumed, as globset does, leaving the
 * literal `[`.
 */
function posixClass(glob: string, i: number): { end: number; lastStart: number } | null {
  let name = '';
  for (;;) {
    const c = glob.charCodeAt(i);
    if (c === 0x3a && glob.charCodeAt(i + 1) === 0x5d) {
      return { end: i + 2, lastStart: POSIX_CLASS_LAST_START[name] ?? 0x5b };
    }
    if (c >= 0x61 && c <= 0x7a && name.length < 8) {
      name += glob[i];
      i++;
    } else {
      return null;
    }
  }
}

function rangeError(start: number, end: number): string {
  return `invalid range; '${String.fromCodePoint(start)}' > '${String.fromCodePoint(end)}'`;
}
