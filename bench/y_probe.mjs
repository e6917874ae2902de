// Cluster Y for bench/dataplane (d): one client, GET after GET for SECONDS, then prints
// "p50 p99 max count" of the round trips in milliseconds.
// Usage: node y_probe.mjs HOST PORT PASSWORD SECONDS
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/package.json', import.meta.url));
const Redis = require('ioredis');

const [host, port, password, seconds] = process.argv.slice(2);
const redis = new Redis({ host, port: Number(port), password, maxRetriesPerRequest: 0 });
await redis.set('y:key', 'y-value');
const lat = [];
const end = Date.now() + Number(seconds || 10) * 1000;
while (Date.now() < end) {
  const t0 = process.hrtime.bigint();
  await redis.get('y:key');
  lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
lat.sort((a, b) => a - b);
const at = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(3);
console.log(`${at(0.5)} ${at(0.99)} ${lat[lat.length - 1].toFixed(3)} ${lat.length}`);
redis.disconnect();
