// Runs the SDK conformance tests with the emulator's CA trusted and Azure's host names mapped to
// loopback; the CA is made before the SDKs load, because Node reads NODE_EXTRA_CA_CERTS at start.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Emulator } from './emulator.mjs';
import { tempDir } from '../integration/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const stateDir = tempDir('kw-emu-');
const emu = await new Emulator().start(stateDir);  // writes ca.pem into stateDir
await emu.stop();
const files = process.argv.slice(2);
const r = spawnSync(process.execPath, ['--require', path.join(here, 'azure_hosts.cjs'), '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit', cwd: path.join(here, '..'),
  env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(stateDir, 'ca.pem'), KEYWARD_EMULATOR_STATE_DIR: stateDir } });
process.exit(r.status ?? 1);
