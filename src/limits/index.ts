/**
 * Site limits, the public part: validate a configuration, keep meter readings, know which
 * limits are in force, allocate what fits and plan the changes. Pure; see each file.
 */

export {
  AllocationError,
  allocate,
  violations,
} from './allocator';
export { ampsPerKw, LimitsConfigError, meterWorstCase, validateLimits } from './circuits';
export { failsafeShares } from './failsafe';
export { MAX_FUTURE_MS, MeterReadingError, MeterReadings } from './meters';
export { planChanges } from './plan';
export { CapError, describeLimit, LimitSources, type ScheduleLimitSlot } from './sources';
export * from './types';
