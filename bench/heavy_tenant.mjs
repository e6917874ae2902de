// Cluster X for bench/dataplane (d): fills X with KEYS keys (pipelined MSET) and a 300 KB key,
// prints "ready", then loops the heavy commands of issue 8 (SAVE, DBSIZE, INFO, KEYS *, FLUSHDB,
// refill, KEYS with the pathological pattern) until killed, printing what it completed.
// Usage: node heavy_tenant.mjs HOST PORT PASSWORD KEYS
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/package.json', import.meta.url));
const Redis = require('ioredis');

const [host, port, password, keysArg] = process.argv.slice(2);
const KEYS = Number(keysArg || 500000);
const redis = new Redis({ host, port: Number(port), password, maxRetriesPerRequest: 0 });
const longKey = 'a'.repeat(300000);
const pattern = `*${'a'.repeat(150000)}b`;

async function fill() {
  for (let base = 0; base < KEYS; base += 100000) {
    const pipe = redis.pipeline();
    for (let i = base; i < Math.min(KEYS, base + 100000); i += 100) {
      const args = [];
      for (let j = i; j < Math.min(KEYS, i + 100); ++j) args.push(`key:${j}`, `value-${j}`);
      pipe.mset(...args);
    }
    await pipe.exec();
  }
  await redis.set(longKey, 'v');
}

await fill();
console.log('ready');
const done = {};
let t = Date.now();
// Counts each command and keeps its longest run in ms.
const count = (name) => {
  const ms = Date.now() - t;
  const [n, max] = done[name] || [0, 0];
  done[name] = [n + 1, Math.max(max, ms)];
  t = Date.now();
};
process.on('SIGTERM', () => { console.log(`X completed [count, longest ms] ${JSON.stringify(done)}`); process.exit(0); });
for (;;) {
  t = Date.now();
  await redis.save(); count('save');
  await redis.dbsize(); count('dbsize');
  await redis.info(); count('info');
  await redis.keys('*'); count('keys_all');
  await redis.flushdb(); count('flushdb');
  await fill(); count('refill');
  // Last: with a backtracking glob matcher this alone held X's worker for many seconds; now a
  // pattern over 4 KiB is refused at once (the refusal is what is counted).
  await redis.keys(pattern).catch((e) => { if (!/pattern too long/.test(e.message)) throw e; });
  count('keys_pathological');
}
