// A strict parser for the Prometheus text exposition format 0.0.4, for tests: every line must be
// a HELP, TYPE, other comment, blank, or a well-formed sample, or parsing throws with the line
// number. Returns families by name; each sample is attached to its family (histogram and summary
// samples through their _bucket/_sum/_count suffixes) and a sample without a TYPE'd family throws.

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const FLOAT = /^[+-]?(?:Inf|inf|NaN|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/;

function parseValue(s, where) {
  if (!FLOAT.test(s)) throw new Error(`${where}: '${s}' is not a sample value`);
  if (/^\+?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  return Number(s);
}

// HELP text: only \\ and \n are escapes.
function unescapeHelp(s, where) {
  return s.replace(/\\(.?)/g, (_, c) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape '\\${c}' in HELP`);
  });
}

// Parses `{a="x",b="y"}` starting at s[i] === '{'; returns [labels, index after '}'].
function parseLabels(s, i, where) {
  const labels = {};
  i++;  // '{'
  while (true) {
    if (s[i] === '}') return [labels, i + 1];
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i + 1}`);
    const name = m[0];
    i += name.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`${where}: expected ="… after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      if (i >= s.length) throw new Error(`${where}: unterminated value of label ${name}`);
      const c = s[i++];
      if (c === '"') break;
      if (c === '\n') throw new Error(`${where}: raw newline in label ${name}`);
      if (c === '\\') {
        const e = s[i++];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`${where}: bad escape '\\${e ?? ''}' in label ${name}`);
      } else {
        value += c;
      }
    }
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} given twice`);
    if (name === '__name__' || !LABEL.test(name)) throw new Error(`${where}: bad label name ${name}`);
    labels[name] = value;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

function familyOf(name, families) {
  if (families.has(name)) return families.get(name);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

export function parsePromText(text) {
  if (text.length && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, help: undefined, type: undefined, samples: [] });
    return families.get(name);
  };
  const lines = text.split('\n');
  lines.pop();  // after the final newline
  lines.forEach((line, n) => {
    const where = `line ${n + 1} '${line.slice(0, 80)}'`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return;  // any other comment
      const [, kind, name, rest = ''] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        f.help = unescapeHelp(rest, where);
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: unknown type '${rest}'`);
        f.type = rest.trim();
      }
      return;
    }
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const name = m[0];
    let i = name.length;
    let labels = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    const rest = line.slice(i);
    const parts = /^[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$/.exec(rest);
    if (!parts) throw new Error(`${where}: expected ' value [timestamp]'`);
    const value = parseValue(parts[1], where);
    const f = familyOf(name, families);
    if (!f || f.type === undefined) throw new Error(`${where}: sample of ${name} has no TYPE line before it`);
    f.samples.push({ name, labels, value, ...(parts[2] ? { timestamp: Number(parts[2]) } : {}) });
  });
  for (const f of families.values()) {
    if (f.type === undefined) throw new Error(`family ${f.name} has HELP but no TYPE`);
  }
  return families;
}

// The value of the sample `name` whose labels include every pair in `labels`; undefined if none,
// an error if several match (the test asked an ambiguous question).
export function sampleValue(families, name, labels = {}) {
  const f = familyOf(name, families);
  if (!f) return undefined;
  const hits = f.samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value;
}

// Every histogram series: buckets in increasing `le` ending with +Inf, counts non-decreasing,
// the +Inf bucket equal to _count, and a _sum. Throws on the first violation.
export function checkHistograms(families) {
  const key = (labels) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    const series = new Map();
    for (const s of f.samples) {
      const k = key(s.labels);
      if (!series.has(k)) series.set(k, { buckets: [], sum: undefined, count: undefined });
      const e = series.get(k);
      if (s.name === `${f.name}_bucket`) e.buckets.push([parseValue(s.labels.le ?? '', `${f.name} le`), s.value]);
      else if (s.name === `${f.name}_sum`) e.sum = s.value;
      else if (s.name === `${f.name}_count`) e.count = s.value;
    }
    for (const [k, e] of series) {
      const where = `${f.name} ${k}`;
      if (!e.buckets.length || e.buckets.at(-1)[0] !== Infinity) throw new Error(`${where}: no +Inf bucket last`);
      for (let i = 1; i < e.buckets.length; i++) {
        if (!(e.buckets[i][0] > e.buckets[i - 1][0])) throw new Error(`${where}: le not increasing`);
        if (e.buckets[i][1] < e.buckets[i - 1][1]) throw new Error(`${where}: buckets not cumulative`);
      }
      if (e.count !== e.buckets.at(-1)[1]) throw new Error(`${where}: _count ${e.count} != +Inf bucket`);
      if (e.sum === undefined) throw new Error(`${where}: no _sum`);
    }
  }
}
