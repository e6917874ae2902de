// Debian's own RocksDB tools (rocksdb-tools: ldb, db_bench) read and write keyward's format
// through the plugin library, given the escrow key file and the cluster's dictionary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Redis from 'ioredis';
import { Server, haveCommand, keywardBin, splitEndpoint, tempDir } from './harness.mjs';

const plugin = path.join(path.dirname(keywardBin), 'libkeyward_rocksdb_plugin.so');
// In the sanitizer build the plugin is instrumented: the ASan runtime must be loaded first
// (GCC's is a dependency ldd shows; clang's is static in programs, so the build names its shared
// copy in KEYWARD_ASAN_RUNTIME).
function preload() {
  const ldd = spawnSync('ldd', [plugin], { encoding: 'utf8' }).stdout || '';
  const asan = ldd.match(/(\S*libasan\.so\S*) => (\S+)/);
  const ubsan = ldd.match(/(\S*libubsan\.so\S*) => (\S+)/);
  const clangRuntime = process.env.KEYWARD_ASAN_RUNTIME || undefined;
  return [clangRuntime, asan?.[2], ubsan?.[2], plugin].filter(Boolean).join(' ');
}
const preloadEnv = { LD_PRELOAD: preload(), ASAN_OPTIONS: 'detect_leaks=0' };
const FS_URI = '--fs_uri=id=EncryptedFileSystem;provider=keyward';
// The file system keyward serve itself uses (storage/encrypted_fs.h): same format.
const OUR_FS_URI = '--fs_uri=KeywardEncryptedFileSystem';
const missing = !haveCommand('ldb') || !haveCommand('db_bench');

test('ldb reads a cluster written by keyward serve; without the plugin it cannot', { skip: missing && 'SKIPPED LOUDLY: ldb/db_bench (rocksdb-tools) not installed' }, async () => {
  const dir = tempDir();
  const server = await new Server(dir).start();
  const c = server.createCluster('tools');
  const { host, port } = splitEndpoint(c.endpoint);
  const redis = new Redis({ host, port, password: c.password, lazyConnect: true });
  await redis.connect();
  await redis.set('from-keyward', 'readable-by-ldb');
  redis.disconnect();
  await server.stop('SIGTERM');

  const db = path.join(dir, 'clusters', c.id);
  const env = { ...process.env, ...preloadEnv, KEYWARD_ESCROW_KEY_FILE: path.join(dir, 'escrow.key'),
    KEYWARD_DICTIONARY: path.join(db, 'keys.dict'), KEYWARD_CLUSTER_ID: c.id };
  const scan = spawnSync('ldb', [`--db=${db}`, FS_URI, 'scan', '--value_hex'], { env, encoding: 'latin1' });
  assert.equal(scan.status, 0, scan.stderr);
  assert.match(scan.stdout, new RegExp(`from-keyward : 0x01.*${Buffer.from('readable-by-ldb').toString('hex')}`, 'i'));

  const plain = spawnSync('ldb', [`--db=${db}`, 'scan'], { encoding: 'latin1' });
  assert.notEqual(plain.status, 0, 'plain ldb must not read an encrypted database');
  const wrong = spawnSync('ldb', [`--db=${db}`, FS_URI, 'scan'], { env: { ...env, KEYWARD_CLUSTER_ID: 'c-other' }, encoding: 'latin1' });
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stdout + wrong.stderr, /belongs to another cluster/);
});

test('db_bench writes through the server\'s file system and reads through RocksDB\'s, and back', { skip: missing && 'SKIPPED LOUDLY: rocksdb-tools not installed' }, () => {
  const dir = tempDir();
  const env = { ...process.env, ...preloadEnv, KEYWARD_ESCROW_KEY_FILE: path.join(dir, 'escrow.key'),
    KEYWARD_DICTIONARY: path.join(dir, 'bench.dict'), KEYWARD_CLUSTER_ID: 'bench' };
  const db = path.join(dir, 'db');
  const args = [`--db=${db}`, '--num=20000', '--key_size=16', '--value_size=100', '--compression_type=none'];
  const fill = spawnSync('db_bench', ['--benchmarks=fillseq,flush', OUR_FS_URI, ...args], { env, encoding: 'latin1' });
  assert.equal(fill.status, 0, fill.stderr);
  for (const uri of [FS_URI, OUR_FS_URI]) {
    const read = spawnSync('db_bench', ['--benchmarks=readrandom', '--use_existing_db=1', uri, ...args], { env, encoding: 'latin1' });
    assert.equal(read.status, 0, read.stderr);
    assert.match(read.stdout, /\(20000 of 20000 found\)/, uri);
  }
  const sst = fs.readdirSync(db).find((f) => f.endsWith('.sst'));
  assert.equal(fs.readFileSync(path.join(db, sst)).subarray(0, 8).toString(), 'KWENCF01');
});
