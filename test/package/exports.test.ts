import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import should from 'should';

// The published entry points, as a user's `require` and `import` see them (by package name,
// through package.json "exports"). Runs against the build in dist/ (npm test builds first).
const root = path.join(__dirname, '../..');
const pkg = require(path.join(root, 'package.json')) as { name: string };

function run(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
}

describe('package entry points', () => {
  before(() => {
    if (!existsSync(path.join(root, 'dist/index.js'))) {
      throw new Error(
        'dist/index.js is missing: run `npm run build` (npm test does) before these tests',
      );
    }
  });

  const names = [
    'DispatchEngine',
    'EventBus',
    'AdapterRegistry',
    'convertSchedule',
    'parseSchedule',
    'ScheduleError',
    'CommandType',
    'CommandStatus',
    'StateMachine',
    'InvalidTransition',
    'createEvChargerStateMachine',
    'createBatteryStateMachine',
    'EventType',
    'validateLimits',
    'LimitSources',
    'MeterReadings',
    'allocate',
    'planChanges',
    'FleetGateway',
    'FleetCentral',
  ];

  it('require() by package name gives the core API', () => {
    const out = run([
      '-e',
      `const q = require(${JSON.stringify(pkg.name)}); console.log(JSON.stringify(${JSON.stringify(names)}.map(n => typeof q[n])))`,
    ]);
    should(JSON.parse(out)).eql(
      names.map((n) => (/^(CommandType|CommandStatus|EventType)$/.test(n) ? 'object' : 'function')),
    );
  });

  it('import by package name gives the same named exports', () => {
    const out = run([
      '--input-type=module',
      '-e',
      `import { ${names.join(', ')} } from ${JSON.stringify(pkg.name)}; console.log(typeof DispatchEngine, EventType.STATE_CHANGED, CommandStatus.PENDING)`,
    ]);
    should(out.trim()).equal('function STATE_CHANGED PENDING');
  });

  it('ships type declarations for the entry point', () => {
    should(existsSync(path.join(root, 'dist/index.d.ts'))).be.true();
  });
});
