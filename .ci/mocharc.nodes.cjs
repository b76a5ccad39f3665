// Mocha options for the Node-RED 5 pass of .ci/run: the project's .mocharc.json with only the
// node tests (test/nodes) and the packed package loaded by a real Node-RED
// (test/package/tarball.test.ts) in "spec" (a spec given on the command line would be added to
// the configured one, not replace it).
const base = require('../.mocharc.json');

module.exports = {
  ...base,
  spec: ['test/nodes/**/*.test.ts', 'test/package/tarball.test.ts'],
};
