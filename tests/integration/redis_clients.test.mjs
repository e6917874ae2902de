// The same scripted session through the real redis-cli and through a real client library.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';
import Redis from 'ioredis';
import { Server, haveCommand, splitEndpoint, tempDir } from './harness.mjs';

let server;
let cluster;
before(async () => {
  server = await new Server(tempDir(), ['--max-bulk-bytes', '4096']).start();
  cluster = server.createCluster('clients');
});
after(async () => { await server.stop(); });

// [command, expected reply as redis-cli prints it without a tty]
const SESSION = [
  ['FLUSHDB', 'OK'],
  ['PING', 'PONG'],
  ['SET greeting hello', 'OK'],
  ['GET greeting', 'hello'],
  ['APPEND greeting ", world"', '12'],
  ['STRLEN greeting', '12'],
  ['SET greeting x NX', ''],
  ['SET fresh y XX', ''],
  ['SET greeting hi XX GET', 'hello, world'],
  ['INCR visits', '1'],
  ['INCRBY visits 41', '42'],
  ['DECR visits', '41'],
  ['DECRBY visits 1', '40'],
  ['INCR greeting', 'ERR value is not an integer or out of range'],
  ['MSET a 1 b 2 c 3', 'OK'],
  ['MGET a b nope c', '1\n2\n\n3'],
  ['EXISTS a b nope', '2'],
  ['EXPIRE a 100', '1'],
  ['TTL a', '100'],
  ['PERSIST a', '1'],
  ['TTL a', '-1'],
  ['TTL nope', '-2'],
  ['SET temp v PX 100000', 'OK'],
  ['PEXPIRE temp 50000', '1'],
  ['GETDEL b', '2'],
  ['DEL a c nope', '2'],
  ['KEYS g*', 'greeting'],
  ['DBSIZE', '3'],
  ['SELECT 1', 'ERR DB index is out of range (a keyward cluster has database 0 only)'],
  ['CLIENT SETNAME tester', 'OK'],
  ['CLIENT GETNAME', 'tester'],
  ['ECHO "two words"', 'two words'],
  ['FLUSHDB', 'OK'],
  ['DBSIZE', '0'],
];

test('redis-cli runs a scripted session', { skip: !haveCommand('redis-cli') && 'SKIPPED LOUDLY: redis-cli (redis-tools) is not installed' }, () => {
  const { port } = splitEndpoint(cluster.endpoint);
  // One connection, the script on standard input, as a user would pipe a file into redis-cli.
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning',
    '--user', 'default', '--pass', cluster.password],
  { input: SESSION.map(([cmd]) => cmd).join('\n') + '\n', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const expected = SESSION.map(([, reply]) => reply).join('\n');
  // redis-cli follows each error reply with a blank line when its output is not a terminal.
  const actual = r.stdout.replace(/^(ERR .*)\n\n/gm, '$1\n').replace(/\n+$/, '');
  assert.equal(actual, expected);
});

test('redis-cli without a password is refused, and --scan walks every key', () => {
  const { port } = splitEndpoint(cluster.endpoint);
  const noAuth = spawnSync('redis-cli', ['-p', String(port), 'GET', 'x'], { encoding: 'utf8' });
  assert.match(noAuth.stdout, /NOAUTH/);
  const wrong = spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', 'wrong', 'GET', 'x'], { encoding: 'utf8' });
  assert.match(wrong.stdout + wrong.stderr, /WRONGPASS/);
  const pipe = Array.from({ length: 250 }, (_, i) => `SET scan:${i} v${i}`).join('\n') + '\n';
  const fill = spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', cluster.password], { input: pipe, encoding: 'utf8' });
  assert.equal(fill.stdout.split('\n').filter((l) => l === 'OK').length, 250);
  const scan = spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', cluster.password, '--scan', '--pattern', 'scan:*'], { encoding: 'utf8' });
  const keys = new Set(scan.stdout.trim().split('\n'));
  assert.equal(keys.size, 250);
  spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', cluster.password, 'FLUSHDB']);
});

test('ioredis runs the same session', async () => {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const redis = new Redis({ host, port, password: cluster.password, lazyConnect: true });
  await redis.connect();
  try {
    for (const [cmd, expected] of SESSION) {
      const args = cmd.match(/"[^"]*"|\S+/g).map((a) => a.replace(/^"|"$/g, ''));
      let got;
      try {
        got = await redis.call(...args);
      } catch (e) {
        got = e.message;
      }
      const text = Array.isArray(got) ? got.map((v) => v ?? '').join('\n') : got === null ? '' : String(got);
      assert.equal(text, expected, `ioredis ${cmd}`);
    }
  } finally {
    redis.disconnect();
  }
});

// Resolves when the server closes the connection (every case ends with QUIT or a protocol error),
// or after `waitMs` when it does not.
function rawExchange(port, bytes, waitMs = 20000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    // The timer is cleared on close: a pending one kept node (and ctest) waiting out waitMs.
    const timer = setTimeout(() => { s.destroy(); resolve({ data, closed: false }); }, waitMs);
    s.on('data', (d) => { data += d; });
    s.on('close', () => { clearTimeout(timer); resolve({ data, closed: true }); });
    s.on('error', () => {});
    s.write(bytes);
  });
}

test('malformed frames get a protocol error and close only that connection', async () => {
  const { port } = splitEndpoint(cluster.endpoint);
  const cases = [
    '*2\r\n$3\r\nGET\r\n:5\r\n',         // not a bulk string
    '*abc\r\n',                           // bad multibulk length
    '*1\r\n$-7\r\n',                      // negative bulk length
    '*1\r\n$3\r\nGETX\r\n',               // bulk not terminated where its length says
    `*2\r\n$4\r\nECHO\r\n$999999\r\n`,    // over --max-bulk-bytes
    '"unbalanced\r\n',                    // inline quoting
  ];
  for (const frame of cases) {
    const r = await rawExchange(port, frame);
    assert.match(r.data, /^-ERR Protocol error/, `frame ${JSON.stringify(frame)} -> ${r.data}`);
    assert.equal(r.closed, true, `connection stays open after ${JSON.stringify(frame)}`);
  }
  // The server is still up and other clients are unaffected.
  const ok = await rawExchange(port, `*2\r\n$4\r\nAUTH\r\n$${cluster.password.length}\r\n${cluster.password}\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n`);
  assert.equal(ok.data, '+OK\r\n+PONG\r\n+OK\r\n');
  const wrongArity = await rawExchange(port, 'GET\r\nNOPE 1\r\nQUIT\r\n');
  assert.equal(wrongArity.data, "-ERR wrong number of arguments for 'get' command\r\n-ERR unknown command 'NOPE', with args beginning with: '1' \r\n+OK\r\n");
});

test('pipelining: 10,000 commands in one write are answered in order', async () => {
  const { port } = splitEndpoint(cluster.endpoint);
  let payload = `AUTH ${cluster.password}\r\n`;
  for (let i = 0; i < 10000; i++) payload += `*2\r\n$4\r\nINCR\r\n$4\r\npipe\r\n`;
  payload += 'QUIT\r\n';
  // Under ASan at -O0 on a loaded 2-core machine no reply had arrived after 20 s. QUIT closes
  // the connection, so a longer wait costs nothing when the server is fast.
  const r = await rawExchange(port, payload, 180000);
  assert.ok(r.closed, 'the server answered QUIT and closed the connection');
  const lines = r.data.split('\r\n');
  assert.equal(lines[0], '+OK');
  assert.equal(lines[1], ':1');
  assert.equal(lines[10000], ':10000');
});

test('many concurrent clients', async () => {
  const { host, port } = splitEndpoint(cluster.endpoint);
  const clients = await Promise.all(Array.from({ length: 200 }, async () => {
    const c = new Redis({ host, port, password: cluster.password, lazyConnect: true });
    await c.connect();
    return c;
  }));
  const results = await Promise.all(clients.map((c, i) => c.set(`conc:${i}`, String(i)).then(() => c.get(`conc:${i}`))));
  results.forEach((v, i) => assert.equal(v, String(i)));
  clients.forEach((c) => c.disconnect());
});
