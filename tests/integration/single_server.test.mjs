// One server per data dir and per REST port, and a REST API that slow clients cannot stall
// (issue 8). Also KEYS/SCAN refusing patterns over the size limit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, freePort, keywardBin, sleep, splitEndpoint, tempDir } from './harness.mjs';

// Runs `keyward serve` that is expected to refuse to start; resolves with its exit and output,
// or fails if it is still running after `ms`.
async function serveExpectingExit(args, ms = 20000) {
  const proc = spawn(keywardBin, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const timer = sleep(ms).then(() => 'timeout');
  const r = await Promise.race([exited, timer]);
  if (r === 'timeout') {
    proc.kill('SIGKILL');
    await exited;
    assert.fail(`second server still running after ${ms} ms:\n${output}`);
  }
  return { ...r, output };
}

async function redisFor(cluster) {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true,
    maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  await redis.connect();
  return redis;
}

test('a second server on the same data dir exits at once naming the dir and the pid', async () => {
  const dir = tempDir();
  const first = await new Server(dir).start();
  try {
    const cluster = first.createCluster('held');
    const redis = await redisFor(cluster);
    assert.equal(await redis.set('k', 'v1'), 'OK');
    const before = (await first.api('GET', '/api/v1/clusters')).json;
    const metadataBefore = fs.readFileSync(`${dir}/metadata.db`);

    const started = Date.now();
    const second = await serveExpectingExit(['--data-dir', dir, '--listen', `127.0.0.1:${await freePort()}`]);
    assert.notEqual(second.code, 0, second.output);
    assert.match(second.output, new RegExp(`data directory ${fs.realpathSync(dir)} is in use`), second.output);
    assert.match(second.output, new RegExp(`pid ${first.proc.pid}\\b`), second.output);
    assert.ok(Date.now() - started < 10000, `took ${Date.now() - started} ms to refuse`);

    // The first server and its cluster are untouched.
    assert.equal(await redis.get('k'), 'v1');
    assert.equal(await redis.set('k', 'v2'), 'OK');
    assert.equal(await redis.get('k'), 'v2');
    const after = (await first.api('GET', '/api/v1/clusters')).json;
    assert.deepEqual(after, before);
    assert.equal((await first.api('GET', `/api/v1/clusters/${cluster.id}`)).json.state, 'available');
    assert.ok(fs.readFileSync(`${dir}/metadata.db`).equals(metadataBefore), 'metadata.db was written');
    await redis.quit();

    // Once the first is gone, the data dir is free again (the lock dies with its holder).
    await first.stop('SIGKILL');
    await first.start();
    const again = await redisFor(cluster);
    assert.equal(await again.get('k'), 'v2');
    await again.quit();
  } finally {
    await first.stop('SIGKILL');
  }
});

test('a second server on the same REST port with another data dir gets a bind error', async () => {
  const first = await new Server(tempDir()).start();
  try {
    const second = await serveExpectingExit(['--data-dir', tempDir(), '--listen', `127.0.0.1:${first.port}`]);
    assert.notEqual(second.code, 0, second.output);
    assert.match(second.output, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}`), second.output);
    // Every request still reaches the first server.
    for (let i = 0; i < 20; i++) assert.equal((await first.api('GET', '/api/v1/clusters')).status, 200);
  } finally {
    await first.stop('SIGKILL');
  }
});

test('a dozen slow REST clients do not stall /healthz', async () => {
  const server = await new Server(tempDir()).start();
  const sockets = [];
  let dripping = true;
  try {
    // Each sends a request header one byte every 2 s, as the attacker did.
    const request = 'POST /api/v1/clusters HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789';
    const closedAt = [];
    const started = Date.now();
    for (let i = 0; i < 12; i++) {
      const s = net.connect(server.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => closedAt.push(Date.now()));
      sockets.push(s);
      (async () => {
        for (const ch of request) {
          if (!dripping || s.destroyed) return;
          s.write(ch);
          await sleep(2000);
        }
      })();
    }
    let worst = 0;
    for (let i = 0; i < 8; i++) {
      const t0 = Date.now();
      const r = await fetch(`${server.url}/healthz`);
      assert.equal(r.status, 200);
      await r.text();
      worst = Math.max(worst, Date.now() - t0);
      await sleep(500);
    }
    console.log(`/healthz worst ${worst} ms with 12 slow clients`);
    assert.ok(worst < 1000, `/healthz took ${worst} ms with 12 slow clients`);
    // And each is cut off at the server's request deadline (10 s for headers and body), not
    // kept for as long as it cares to drip.
    while (closedAt.length < sockets.length && Date.now() - started < 30000) await sleep(250);
    assert.equal(closedAt.length, sockets.length, 'slow clients were never disconnected');
    const longest = Math.max(...closedAt) - started;
    console.log(`slow clients disconnected after ${Math.min(...closedAt) - started}-${longest} ms`);
    assert.ok(longest < 16000, `slow clients held for ${longest} ms`);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  } finally {
    dripping = false;
    for (const s of sockets) s.destroy();
    await server.stop('SIGKILL');
  }
});

test('KEYS and SCAN MATCH refuse patterns over 4 KiB, and match long keys quickly', async () => {
  const server = await new Server(tempDir()).start();
  try {
    const redis = await redisFor(server.createCluster('globs'));
    await redis.set('a'.repeat(300000), '1');
    await redis.set('user:1:name', 'x');
    const huge = '*' + 'a'.repeat(150000) + 'b';
    await assert.rejects(redis.keys(huge), /pattern too long \(150002 bytes; the limit is 4096\)/);
    await assert.rejects(redis.scan('0', 'MATCH', huge), /pattern too long/);
    const t0 = Date.now();
    const near = '*?' + 'a'.repeat(4000) + 'b*';
    assert.deepEqual(await redis.keys(near), []);
    assert.deepEqual(await redis.keys('user:*:name'), ['user:1:name']);
    assert.ok(Date.now() - t0 < 5000, `KEYS with a 4 KiB pattern took ${Date.now() - t0} ms`);
    await redis.quit();
  } finally {
    await server.stop('SIGKILL');
  }
});
