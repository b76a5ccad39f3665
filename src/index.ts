/**
 * @qubit-energy/node-red-coordinator: the core library. Nothing here imports Node-RED.
 */

export type { AdapterHost, AssetMeasurement } from './adapters/host';
export {
  type BatteryConfig,
  ModbusBatteries,
  type ModbusBatteriesOptions,
  type Telemetry,
} from './adapters/modbus/batteries';
export { decodeValue, EncodeError, encodeValue, fromWords, toWords } from './adapters/modbus/codec';
export {
  type ConnectionState,
  ModbusConnection,
  type ModbusConnectionOptions,
  ModbusDeviceError,
  ModbusTransportError,
} from './adapters/modbus/connection';
export { MAPS, resolveMap, SUNSPEC_124, SUNSPEC_704 } from './adapters/modbus/maps';
export {
  type DataType,
  GENERIC_MAP,
  type RegisterMap,
  RegisterMapError,
  type RegisterSpec,
  type RevertSpec,
  validateRegisterMap,
  type WordOrder,
} from './adapters/modbus/register-map';
export {
  CentralSystem,
  type CentralSystemOptions,
  type ChargerEvent,
  type KnownCharger,
  type SecurityProfile,
} from './adapters/ocpp/central-system';
export {
  type CapabilityEvent,
  type FailsafeEvent,
  OcppChargers,
  type OcppChargersOptions,
  type UnitEvent,
} from './adapters/ocpp/chargers';
export {
  type ChargerConfig,
  commandToCall,
  type FailsafeOptions,
  interpretResponse,
  kwToLimit,
  type MeterReading,
  OCPP_VERSIONS,
  type OcppCall,
  type OcppVersion,
  readMeterValues,
  type StationLimit,
  stationMaxCall,
  TranslationError,
} from './adapters/ocpp/translate';
export {
  type Adapter,
  AdapterError,
  AdapterRegistry,
  type AdapterResult,
} from './adapters/registry';
export { type AssetEntry, AssetTable } from './assets';
export { DEFAULT_SLICE_MS, runSliced, type SliceOptions, type Steps } from './chunks';
export { type Clock, ManualClock, systemClock, toMillis } from './clock';
export {
  type Command,
  type CommandHistoryEntry,
  type CommandInput,
  type CommandJSON,
  type CommandSource,
  CommandStatus,
  CommandType,
  CommandValidationError,
  canTransition,
  commandFromJSON,
  commandToJSON,
  FINAL_STATUSES,
  InvalidCommandTransition,
  isFinal,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from './commands';
export {
  type ComplianceKind,
  ComplianceMonitor,
  type ComplianceOptions,
  type ComplianceState,
  DEFAULT_GRACE_MS,
  type Measurement,
  type OnDeviation,
  type Setpoint,
  type Transition as ComplianceTransition,
} from './compliance';
export {
  type ChangePlan,
  type Conversion,
  type ConvertOptions,
  commandsAsync,
  convertSchedule,
  convertScheduleAsync,
  DEFAULT_DEADBAND_KW,
  type HorizonEnd,
  type ImportLimit,
  mapKeysFor,
  type PlannedAsset,
  type PlanSettings,
} from './convert';
export {
  type CommandFilter,
  DEFAULT_CONFIG,
  DispatchEngine,
  type EngineConfig,
  type EngineDeps,
  type EngineJSON,
  type EngineMetaJSON,
  type EngineStats,
  type PersistChange,
  type PlanSubmission,
  type ResponseOptions,
  resolveConfig,
} from './engine';
export {
  type AnyBusEvent,
  type AssetCompliant,
  type AssetDeviation,
  type BusEvent,
  EVENT_TYPES,
  EventBus,
  type EventBusOptions,
  type EventPayloads,
  EventType,
  type LimitsChanged,
  type OptimiserSilence,
  type ScheduleSummary,
  type SetpointLimited,
  type StateChange,
  type Unsubscribe,
} from './event-bus';
// Fleet (src/fleet/): the northbound MQTT contract v1 (docs/asyncapi.json), a site's gateway
// and the optimiser's central client.
export {
  type CommandsOptions as FleetCommandsOptions,
  FleetCentral,
  type FleetCentralEvents,
  type FleetCentralOptions,
  type RequestOptions as FleetRequestOptions,
  type ScheduleOptions as FleetScheduleOptions,
} from './fleet/central';
export {
  type Ack,
  type AssetStatus,
  assetTopic,
  BUFFER_DROPPED,
  type BufferDropped,
  CONTRACT_VERSION,
  type CommandsRequest,
  DEFAULT_PREFIX,
  eventTopic,
  type FleetEvent,
  type LimitsRequest,
  type Presence,
  type ScheduleRequest,
  siteTopic,
  type Telemetry as FleetTelemetry,
  type TopicKind,
  telemetryTopic,
} from './fleet/contract';
export { FleetGateway, type FleetGatewayOptions, type FleetGatewayStats } from './fleet/gateway';
export {
  COMPACT_AFTER_BYTES,
  type JournalOptions,
  type JournalStats,
  JournalStore,
} from './journal';
export { stringifySteps } from './json-chunks';
// Site limits (src/limits/): circuits, meters of uncontrolled load, limit sources and the
// allocator that keeps every circuit within its limits. Pure, no I/O.
export {
  type Allocation,
  AllocationError,
  type AllocationRequest,
  type AssetConnection,
  allocate,
  ampsPerKw,
  CapError,
  type CircuitLimits,
  type CircuitLoad,
  type CircuitSpec,
  type DynamicCap,
  describeLimit,
  type EffectiveLimits,
  failsafeShares,
  type LimitInForce,
  LimitSources,
  type LimitsConfig,
  LimitsConfigError,
  MAX_FUTURE_MS,
  type MeterReading as LimitsMeterReading,
  MeterReadingError,
  MeterReadings,
  type MeterSpec,
  meterWorstCase,
  PHASES,
  type Phase,
  type PhaseConnection,
  planChanges,
  type ResolvedAsset,
  type ResolvedCircuit,
  type ScheduleLimitSlot,
  type SiteLimits,
  validateLimits,
  violations,
} from './limits';
export {
  NET_PROBLEM_TEXTS,
  type NetProblem,
  type NetProblemCode,
  type NetTarget,
  netProblem,
} from './net-errors';
export {
  type PlanAssetEntry,
  type PlanJSON,
  planOfConversion,
  planOfConversionAsync,
  readPlanInChunks,
  type SchedulePlan,
  StoredPlan,
} from './plans';
export { formatRestoreProblem, type RestoreProblem } from './restore';
export {
  classifyColumn,
  NEGATIVE_TOLERANCE_KW,
  type ParseOptions,
  parseSchedule,
  parseScheduleAsync,
  Schedule,
  ScheduleError,
  type ScheduleProblem,
  type SetpointColumn,
  TIME_COLUMN_NAMES,
} from './schedule';
export { MAX_SILENCE_SECONDS, SILENCE_SUFFIX } from './silence';
export {
  BatterySimulator,
  type BatterySimulatorOptions,
  ModbusException,
  type PowerOnRegister,
  type SetpointChange,
  type SimBatteryState,
} from './sim/battery';
export {
  ChargePointSimulator,
  type ChargePointSimulatorOptions,
  type LimitChange,
  type RespondHook,
  type SimStatus,
} from './sim/charge-point';
export {
  type AssetKind,
  type DueCommandSink,
  Site,
  type SiteJSON,
  type SiteOptions,
  type Timers,
} from './site';
export { type LimiterJSON, SiteLimiter, type SiteLimiterDeps } from './site-limits';
export {
  BATTERY_DEFINITION,
  BatteryState,
  createBatteryStateMachine,
  createEvChargerStateMachine,
  EV_CHARGER_DEFINITION,
  EvChargerState,
  type Guard,
  HOLD_STATES,
  InvalidTransition,
  StateMachine,
  type StateMachineDefinition,
  type StateMachineOptions,
  type Transition,
} from './state-machine';
export {
  FileStore,
  MemoryStore,
  PartialRestoreError,
  type StateStore,
  StoreCorruptError,
} from './store';
export {
  fmtNumber,
  summarizeChargerEvent,
  summarizeCommand,
  summarizeEvent,
  summarizeLimit,
  summarizeLimited,
  summarizeReadings,
  summarizeResult,
  summarizeTelemetry,
} from './summary';
export {
  buildSnapshot,
  TIMELINE_STATUSES,
  type TimelineAsset,
  type TimelineCommand,
  type TimelineDelta,
  TimelineFeed,
  type TimelineFeedOptions,
  type TimelineFeedStats,
  type TimelineSnapshot,
  type TimelineStatus,
  timelineCommand,
  timelineStatus,
} from './timeline';
