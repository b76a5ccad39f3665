// Mocha options for the node tests alone (the Node-RED 5 pass of .ci/run): the project's
// .mocharc.json with only test/nodes in "spec" (a spec given on the command line would be
// added to the configured one, not replace it).
const base = require('../.mocharc.json');

module.exports = { ...base, spec: ['test/nodes/**/*.test.ts'] };
