/**
 * Register maps shipped with the package: the generic (simulator) map and maps built from the
 * public SunSpec information models.
 *
 * ## SunSpec addressing
 *
 * A SunSpec device starts its map with the two-register marker "SunS" (0x5375 0x6e53) at a
 * well-known base, most often 40000 as a 0-based PDU address (the register vendor tables
 * call "40001" in 1-based "4xxxx" notation; 0 and 50000 are also used). The models follow
 * back to back, each as a two-register header (model ID, then the length L of what follows)
 * and L registers of points; the chain ends with ID 0xFFFF. So the first model's ID sits at
 * marker + 2, and each next model's ID at the previous model's ID address + 2 + L.
 *
 * Here `baseAddress` is the 0-based PDU address of a model's first point, right after its ID
 * and L header (ID address + 2), and every point is `baseAddress + offset`, with the offsets
 * of the SMDX definitions (which count from the first point, not from the header). Which
 * models a device has, and where, differs from device to device: read the chain (or the
 * vendor's table, minding 1-based addresses) and pass the base of the model found; the
 * `SUNSPEC_OFFSETS` below include each model's ID and L so a scan can check what it found.
 *
 * Source of every offset, type, unit and scale-factor point below: the SunSpec Alliance's
 * model definitions, https://github.com/sunspec/models, tag v2026-04-20 (commit
 * a0b3e732ca9c163889a9c33f41c9315668a2488c): json/model_124.json and smdx/smdx_00124.xml,
 * json/model_704.json, json/model_701.json, json/model_713.json. The layouts of these four
 * models are the same at tag v2024-11-15 (only descriptions changed since). The data here is
 * our own transcription; nothing from that repository is copied into this package.
 */

import { BatteryState } from '../../state-machine';
import {
  GENERIC_MAP,
  type RegisterMap,
  RegisterMapError,
  validateRegisterMap,
} from './register-map';

const SUNSPEC_REPO =
  'https://github.com/sunspec/models, tag v2026-04-20 (commit a0b3e732ca9c163889a9c33f41c9315668a2488c)';

/**
 * Offsets of the points these maps use, from the model's first point (`baseAddress`), and
 * each model's ID and length L (the registers after the header), as in the definitions.
 */
export const SUNSPEC_OFFSETS = {
  /** Model 124, Basic Storage Controls (json/model_124.json, smdx/smdx_00124.xml). */
  124: {
    ID: 124,
    L: 24,
    /** uint16, W, sf WChaMax_SF: setpoint for maximum charge (the reference of InWRte). */
    WChaMax: 0,
    /** bitfield16: bit 0 CHARGE (InWRte in force), bit 1 DiSCHARGE (OutWRte in force). */
    StorCtl_Mod: 3,
    /** uint16, % AhrRtg, sf ChaState_SF: currently available energy, percent of capacity. */
    ChaState: 6,
    /** enum16: 1 OFF, 2 EMPTY, 3 DISCHARGING, 4 CHARGING, 5 FULL, 6 HOLDING, 7 TESTING. */
    ChaSt: 9,
    /** int16, % WDisChaMax, sf InOutWRte_SF: percent of max discharge rate. */
    OutWRte: 10,
    /** int16, % WChaMax, sf InOutWRte_SF: percent of max charging rate. */
    InWRte: 11,
    /** uint16, s: timeout period for the charge/discharge rate. */
    InOutWRte_RvrtTms: 13,
    /** enum16: 0 PV, 1 GRID (whether the battery may charge from the grid). */
    ChaGriSet: 15,
    WChaMax_SF: 16,
    ChaState_SF: 20,
    InOutWRte_SF: 23,
  },
  /** Model 704, DER AC Controls (json/model_704.json). */
  704: {
    ID: 704,
    L: 65,
    /** enum16: 0 DISABLED, 1 ENABLED. The definition notes "may be negative for charging". */
    WSetEna: 20,
    /** enum16: 0 W_MAX_PCT (WSetPct in force), 1 WATTS (WSet in force). */
    WSetMod: 21,
    /** int32 (2 registers), W, sf WSet_SF: active power setting. */
    WSet: 22,
    /** int32 (2 registers), W, sf WSet_SF: the reversion setting, in force after a revert. */
    WSetRvrt: 24,
    /** int16, Pct (of maximum active power), sf WSetPct_SF. */
    WSetPct: 26,
    /** enum16: reversion of the set-active-power function enabled. */
    WSetEnaRvrt: 28,
    /** uint32 (2 registers), s: set active power reversion time. */
    WSetRvrtTms: 29,
    WSet_SF: 53,
    WSetPct_SF: 54,
  },
  /** Model 701, DER AC Measurement (json/model_701.json). */
  701: {
    ID: 701,
    L: 153,
    /** enum16: 0 OFF, 1 SLEEPING, 2 STARTING, 3 RUNNING, 4 THROTTLED, 5 SHUTTING_DOWN, 6 FAULT, 7 STANDBY. */
    InvSt: 2,
    /** int16, W, sf W_SF: "positive for DER generation and negative for absorption". */
    W: 8,
    W_SF: 114,
  },
  /** Model 713, DER Storage Capacity (json/model_713.json). */
  713: {
    ID: 713,
    L: 7,
    /** uint16, Pct, sf Pct_SF: state of charge of the DER storage. */
    SoC: 2,
    /** enum16: 0 OK, 1 WARNING, 2 ERROR. */
    Sta: 4,
    Pct_SF: 6,
  },
} as const;

/** Checks a base address: an integer such that the whole model fits below 65536. */
function checkBase(base: unknown, model: keyof typeof SUNSPEC_OFFSETS, field: string): number {
  const L = SUNSPEC_OFFSETS[model].L;
  if (typeof base !== 'number' || !Number.isInteger(base) || base < 0 || base + L - 1 > 65535) {
    throw new RegisterMapError(
      `SunSpec model ${model}: ${field} must be the 0-based address of the model's first point (after its ID and length), an integer from 0 to ${65535 - L + 1}, got ${JSON.stringify(base)}`,
      field,
    );
  }
  return base;
}

/**
 * SunSpec model 124 (Basic Storage Controls) at `baseAddress`. PARTIAL: it steers charging
 * only, and only as a limit.
 *
 * Model 124 has no power setpoint. It has two rate limits, one per direction, in percent:
 * InWRte (of WChaMax) caps charging while StorCtl_Mod bit 0 is set, OutWRte (of WDisChaMax)
 * caps discharging while bit 1 is set. Our format writes one signed setpoint register, so
 * it cannot carry "charge limit in one register, discharge limit in another, the idle
 * direction at 0 %". What this map does:
 *
 * - setpoint: InWRte with InOutWRte_SF, percent of the asset's rated charge power (so set
 *   the asset's rated charge power to the device's WChaMax). It is declared `uint16`
 *   although the model says `int16`, on purpose: a discharge setpoint (negative when
 *   positive = charge) then does not fit and the codec refuses it before anything is
 *   written, instead of writing a negative charge limit, which model 124 does not define
 *   (some vendors give it a meaning of their own). Values we write are never negative, so
 *   the encoding of what we write is that of the int16.
 * - mode: StorCtl_Mod = 1 (charge limit in force) for charge and idle; 0 (no limit: the
 *   device's own control) for discharge, which is refused anyway. Idle is "no charging"
 *   (InWRte 0 %), not a hold: model 124 holds only with both limits at 0 %.
 * - A limit is not a setpoint: the device charges at most this much, and only from the grid
 *   if ChaGriSet (offset 15) is GRID; set that on the device.
 * - revert: InOutWRte_RvrtTms (offset 13, uint16, s), the timeout of the rate settings. With
 *   a battery's `revertSeconds` the adapter writes it on every connect and re-writes the
 *   setpoint every watchdog period, below it; what the device falls back to when it runs
 *   out is the device's (model 124 has no register for it). Model 124 has no enable for it.
 * - telemetry: SoC from ChaState (percent of the Ah rating) with ChaState_SF; status from
 *   ChaSt. Model 124 has no power point (read it from the inverter's model, e.g. 103/701).
 */
export function SUNSPEC_124(baseAddress: number): RegisterMap {
  const base = checkBase(baseAddress, 124, 'baseAddress');
  const o = SUNSPEC_OFFSETS[124];
  return {
    name: 'sunspec-124',
    description:
      `SunSpec model 124 (Basic Storage Controls), first point at ${base}. PARTIAL: charge only, as a limit: ` +
      'InWRte (% of WChaMax) with StorCtl_Mod = 1; discharge setpoints are refused (model 124 limits discharge in a ' +
      'second register, OutWRte, which this format cannot write), idle is InWRte 0 % (no charging, not a hold). ' +
      'Set the rated charge power to WChaMax and ChaGriSet to GRID. With revertSeconds, the revert time ' +
      'InOutWRte_RvrtTms is written on every connect.',
    source: `SunSpec model 124: ${SUNSPEC_REPO}, json/model_124.json and smdx/smdx_00124.xml`,
    setpoint: {
      address: base + o.InWRte,
      type: 'uint16',
      scaleFactorAddress: base + o.InOutWRte_SF,
      unit: 'percent',
      sign: 'charge-positive',
      function: 'FC16',
      readBack: true,
    },
    mode: {
      address: base + o.StorCtl_Mod,
      function: 'FC16',
      values: { charge: 1, idle: 1, discharge: 0 },
    },
    telemetry: {
      soc: { address: base + o.ChaState, type: 'uint16', scaleFactorAddress: base + o.ChaState_SF },
      status: {
        address: base + o.ChaSt,
        type: 'uint16',
        states: {
          '1': BatteryState.UNAVAILABLE, // OFF
          '2': BatteryState.IDLE, // EMPTY
          '3': BatteryState.DISCHARGING,
          '4': BatteryState.CHARGING,
          '5': BatteryState.IDLE, // FULL
          '6': BatteryState.IDLE, // HOLDING
          '7': BatteryState.UNAVAILABLE, // TESTING
        },
      },
    },
    revert: { address: base + o.InOutWRte_RvrtTms, type: 'uint16', unit: 's', function: 'FC16' },
  };
}

/** Where the telemetry of a model 704 device comes from: the bases of its other DER models. */
export interface SunSpec704Telemetry {
  /** First point of model 701 (DER AC Measurement): power W / W_SF and inverter state InvSt. */
  model701?: number;
  /** First point of model 713 (DER Storage Capacity): SoC / Pct_SF. */
  model713?: number;
}

/**
 * SunSpec model 704 (DER AC Controls, IEEE 1547-2018 models) at `baseAddress`, the "set
 * active power" function: WSet in watts with WSet_SF, enabled by WSetEna.
 *
 * - setpoint: WSet, int32, high word first (SunSpec registers are big-endian), W, scale
 *   factor WSet_SF. Sign: the definition says the setting "may be negative for charging",
 *   and model 701 measures active power "positive for DER generation and negative for
 *   absorption": positive = discharge.
 * - mode: WSetEna = 1 (enabled) for charge, discharge and idle alike; idle is WSet = 0 W
 *   with the function enabled, which holds the DER at 0 W (disabling it would hand control
 *   back to the device instead).
 * - NOT written by this map: WSetMod (offset 21) must be 1 (WATTS) for WSet to be the value
 *   in force (0, W_MAX_PCT, uses WSetPct instead); our format writes one mode register, so
 *   set WSetMod once on the device.
 * - revert: WSetRvrtTms (offset 29, uint32, s) with WSetEnaRvrt (offset 28) = 1. With a
 *   battery's `revertSeconds` the adapter writes both on every connect (the device may have
 *   restarted) and re-writes the setpoint every watchdog period, below it; when no one writes
 *   for that long, the device leaves WSet for its reversion setting WSetRvrt (offset 24, W,
 *   WSet_SF), which this map does not write: set it (0 W: hold) on the device. The
 *   definition calls WSetEnaRvrt "reversion active power function enable"; by its name (like
 *   WSetRvrt for WSet) it is the value WSetEna takes at the reversion: 1 keeps the function
 *   on, at WSetRvrt, where 0 would hand the battery back to the device's own control.
 * - telemetry: model 704 has none; pass the bases of models 701 (power, inverter state) and
 *   713 (SoC) when the device has them. InvSt says whether the inverter is off, faulted,
 *   sleeping or in standby, not whether it charges or discharges: for STARTING, RUNNING,
 *   THROTTLED and SHUTTING_DOWN the state is left alone (the power's sign tells the way).
 */
export function SUNSPEC_704(baseAddress: number, telemetry: SunSpec704Telemetry = {}): RegisterMap {
  const base = checkBase(baseAddress, 704, 'baseAddress');
  const o = SUNSPEC_OFFSETS[704];
  const map: RegisterMap = {
    name: 'sunspec-704',
    description:
      `SunSpec model 704 (DER AC Controls), first point at ${base}: WSet (W, WSet_SF, positive = discharge) with ` +
      'WSetEna = 1; idle is 0 W. Set WSetMod to 1 (WATTS) on the device: this map does not write it. ' +
      'With revertSeconds, WSetRvrtTms and WSetEnaRvrt = 1 are written on every connect; the device then ' +
      'falls back to WSetRvrt (set it on the device) when no one writes for that long.' +
      (telemetry.model701 === undefined
        ? ''
        : ` Power and inverter state from model 701 at ${telemetry.model701}.`) +
      (telemetry.model713 === undefined ? '' : ` SoC from model 713 at ${telemetry.model713}.`),
    source:
      `SunSpec model 704: ${SUNSPEC_REPO}, json/model_704.json` +
      (telemetry.model701 === undefined ? '' : '; model 701: json/model_701.json') +
      (telemetry.model713 === undefined ? '' : '; model 713: json/model_713.json'),
    setpoint: {
      address: base + o.WSet,
      type: 'int32',
      wordOrder: 'high-first',
      scaleFactorAddress: base + o.WSet_SF,
      unit: 'W',
      sign: 'discharge-positive',
      function: 'FC16',
      readBack: true,
    },
    mode: {
      address: base + o.WSetEna,
      function: 'FC16',
      values: { charge: 1, discharge: 1, idle: 1 },
    },
    telemetry: {},
    revert: {
      address: base + o.WSetRvrtTms,
      type: 'uint32',
      wordOrder: 'high-first',
      unit: 's',
      function: 'FC16',
      enable: { address: base + o.WSetEnaRvrt, value: 1, function: 'FC16' },
    },
  };
  if (telemetry.model701 !== undefined) {
    const b = checkBase(telemetry.model701, 701, 'model701');
    const m = SUNSPEC_OFFSETS[701];
    map.telemetry.power = {
      address: b + m.W,
      type: 'int16',
      scaleFactorAddress: b + m.W_SF,
      unit: 'W',
      sign: 'discharge-positive',
    };
    map.telemetry.status = {
      address: b + m.InvSt,
      type: 'uint16',
      states: {
        '0': BatteryState.UNAVAILABLE, // OFF
        '1': BatteryState.IDLE, // SLEEPING
        '6': BatteryState.FAULTED, // FAULT
        '7': BatteryState.IDLE, // STANDBY
      },
    };
  }
  if (telemetry.model713 !== undefined) {
    const b = checkBase(telemetry.model713, 713, 'model713');
    const m = SUNSPEC_OFFSETS[713];
    map.telemetry.soc = { address: b + m.SoC, type: 'uint16', scaleFactorAddress: b + m.Pct_SF };
  }
  return map;
}

/** The shipped maps by name: a map, or a function of a SunSpec model's base address. */
export const MAPS: Record<string, RegisterMap | ((base: number) => RegisterMap)> = {
  generic: GENERIC_MAP,
  'sunspec-124': SUNSPEC_124,
  'sunspec-704': SUNSPEC_704,
};

export type SunSpecProfile =
  | { profile: 'sunspec-124'; baseAddress: number }
  | ({ profile: 'sunspec-704'; baseAddress: number } & SunSpec704Telemetry);

/**
 * A validated map from a shipped map's name, a map (from code or parsed JSON), or a SunSpec
 * profile with its base address. Returns a copy, so callers may not change a shipped map.
 * Throws a RegisterMapError for an unknown name or profile, a profile named without its
 * base address, or a map that does not validate.
 */
export function resolveMap(spec: string | RegisterMap | SunSpecProfile): RegisterMap {
  const known = Object.keys(MAPS).join(', ');
  if (typeof spec === 'string') {
    const entry = Object.hasOwn(MAPS, spec) ? MAPS[spec] : undefined;
    if (entry === undefined)
      throw new RegisterMapError(
        `unknown register map ${JSON.stringify(spec)}; known maps: ${known}`,
        'name',
      );
    if (typeof entry === 'function') {
      throw new RegisterMapError(
        `register map ${JSON.stringify(spec)} needs the address of the SunSpec model's first point: pass { profile: ${JSON.stringify(spec)}, baseAddress }`,
        'baseAddress',
      );
    }
    return validateRegisterMap(structuredClone(entry));
  }
  if (spec && typeof spec === 'object' && 'profile' in spec) {
    const p = spec as { profile: unknown; baseAddress?: unknown };
    switch (p.profile) {
      case 'sunspec-124':
        return validateRegisterMap(SUNSPEC_124(p.baseAddress as number));
      case 'sunspec-704': {
        const { model701, model713 } = spec as SunSpec704Telemetry;
        return validateRegisterMap(SUNSPEC_704(p.baseAddress as number, { model701, model713 }));
      }
      default:
        throw new RegisterMapError(
          `unknown register map profile ${JSON.stringify(p.profile)}; known profiles: sunspec-124, sunspec-704`,
          'profile',
        );
    }
  }
  return validateRegisterMap(structuredClone(spec));
}
