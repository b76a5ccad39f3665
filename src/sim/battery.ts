/**
 * A simulated battery inverter behind a Modbus TCP server (modbus-serial's `ServerTCP`).
 *
 * It keeps the registers of a register map (default: `GENERIC_MAP`), one independent battery
 * per unit id: the setpoint register is the power it is asked for, the actual power is that
 * request within the battery's limits, the state of charge integrates the actual power over
 * time, and the telemetry registers (SoC, measured power, status) follow. It answers like a
 * device: an address that the map does not know is exception 2 (illegal data address), a
 * unit id that it does not serve gets no answer at all (the client times out), and switches
 * make it stop answering (all units or one; the connection stays open) or report a fault.
 *
 * Faults that the field produces, for fault tests: `setSilent` (a unit, or the whole device,
 * that never answers), `restart` (the device reboots: every connection closes, nothing listens
 * for `downMs`, then it listens on the same port with its control registers at their power-on
 * values, setpoint 0, and optionally other power-on registers such as a new scale factor),
 * the watchdog and revert timer (device.ts), and `setpointHistory` (every setpoint the battery took, with its
 * time and cause: a write, a revert, a restart) to count what was lost.
 *
 * Time: `tick(ms?)` integrates deterministically (tests move time with it and never sleep);
 * a timer calls `tick()` every `tickMs` to follow the clock. Every write first integrates up
 * to the present at the old power, so the energy is exact whatever the tick.
 *
 * The layout, one concern a file under battery/: `types.ts` (the public types, the options
 * and their checks, the Modbus exception, `freePort`), `registers.ts` (the register layout of
 * the map and reading / writing values in a unit's registers), `device.ts` (the batteries:
 * power, SoC over simulated time, a client's write checked and applied, the watchdog and the
 * revert timer; what it takes as given about real devices is listed there) and
 * `simulator.ts` (`BatterySimulator`: the Modbus TCP server, restarts and the test switches).
 * This file is the public entry point.
 *
 * Quirks, for compliance tests (`setQuirks` switches them while running): `followRateKwPerS`
 * (the power ramps toward the request at that rate instead of at once) and `wrongWay` (it
 * runs the opposite direction of what it is asked, within its limits).
 */

export { BatterySimulator } from './battery/simulator';
export {
  type BatterySimulatorOptions,
  freePort,
  ILLEGAL_DATA_ADDRESS,
  ILLEGAL_DATA_VALUE,
  ModbusException,
  type PowerOnRegister,
  type RegisterTable,
  type SetpointChange,
  type SimBatteryState,
  type SimMode,
  type SimWrite,
} from './battery/types';
