// Loaded with `node --require`: resolves Azure's public host names to 127.0.0.1, so the official
// SDKs talk to keyward-kms-emulator with their real URLs (the port is the emulator's). This is
// name resolution only; every byte on the wire is the SDKs' own.
const dns = require('node:dns');
const AZURE = /(\.vault\.azure\.net|\.managedhsm\.azure\.net|^login\.microsoftonline\.com|^management\.azure\.com)$/i;
const original = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (typeof options === 'number') options = { family: options };
  if (AZURE.test(hostname)) {
    if (options && options.all) return process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }]);
    return process.nextTick(callback, null, '127.0.0.1', 4);
  }
  return original.call(this, hostname, options, callback);
};
