// Mocha options for the MQTT pass of .ci/run: the project's .mocharc.json with only the fleet
// tests (test/unit/fleet-*.test.ts, test/fleet) in "spec", run against Mosquitto
// (QE_MQTT_BROKER=mosquitto, read by test/helpers/mqtt-broker.ts). It includes
// test/fleet/python.test.ts, which .mocharc.json ignores: it runs clients/python/optimiser.py
// with python3 and paho-mqtt, which only this pass installs (apt).
const base = require('../.mocharc.json');

module.exports = {
  ...base,
  spec: ['test/unit/fleet-*.test.ts', 'test/fleet/**/*.test.ts'],
  ignore: [],
};
