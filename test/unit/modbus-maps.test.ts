import should from 'should';
import {
  decodeValue,
  EncodeError,
  encodeValue,
  registerValueToSetpoint,
  setpointToRegisterValue,
} from '../../src/adapters/modbus/codec';
import {
  MAPS,
  resolveMap,
  SUNSPEC_124,
  SUNSPEC_704,
  SUNSPEC_OFFSETS,
} from '../../src/adapters/modbus/maps';
import {
  GENERIC_MAP,
  type RegisterMap,
  RegisterMapError,
  validateRegisterMap,
} from '../../src/adapters/modbus/register-map';
import { BatteryState } from '../../src/state-machine';

function mapError(fn: () => unknown, pattern: RegExp): RegisterMapError {
  try {
    fn();
  } catch (err) {
    should(err).be.instanceOf(RegisterMapError);
    should((err as Error).message).match(pattern);
    return err as RegisterMapError;
  }
  throw new Error('expected a RegisterMapError');
}

// Offsets below are the SMDX offsets (from the model's first point, after ID and L) read from
// https://github.com/sunspec/models at tag v2026-04-20: json/model_124.json,
// smdx/smdx_00124.xml, json/model_704.json, json/model_701.json, json/model_713.json.
const BASE = 40_070;

describe('Modbus register maps (maps.ts)', () => {
  describe('every shipped map validates', () => {
    for (const [name, entry] of Object.entries(MAPS)) {
      it(name, () => {
        const map = typeof entry === 'function' ? entry(BASE) : entry;
        should(validateRegisterMap(map)).equal(map);
        should(map.name).equal(name);
        if (name !== 'generic') should(map.source).match(/sunspec\/models.*v2026-04-20/);
      });
    }

    it('model 704 with the telemetry of models 701 and 713', () => {
      const map = SUNSPEC_704(BASE, { model701: 40_200, model713: 40_400 });
      should(validateRegisterMap(map)).equal(map);
      should(map.source)
        .match(/model_701\.json/)
        .and.match(/model_713\.json/);
    });

    it('at the lowest and highest base addresses a model fits', () => {
      validateRegisterMap(SUNSPEC_124(0));
      validateRegisterMap(SUNSPEC_124(65_536 - 24));
      validateRegisterMap(SUNSPEC_704(65_536 - 65));
    });
  });

  describe('model 124 (Basic Storage Controls)', () => {
    const map = SUNSPEC_124(BASE);

    it('the model length and the offsets are those of the definition', () => {
      should(SUNSPEC_OFFSETS[124].L).equal(24);
      should(SUNSPEC_OFFSETS[124]).containDeep({
        WChaMax: 0,
        StorCtl_Mod: 3,
        ChaState: 6,
        ChaSt: 9,
        OutWRte: 10,
        InWRte: 11,
        InOutWRte_RvrtTms: 13,
        ChaGriSet: 15,
        WChaMax_SF: 16,
        ChaState_SF: 20,
        InOutWRte_SF: 23,
      });
    });

    it('the setpoint is InWRte, percent of WChaMax, scaled by InOutWRte_SF', () => {
      should(map.setpoint).containDeep({
        address: BASE + 11,
        scaleFactorAddress: BASE + 23,
        unit: 'percent',
        sign: 'charge-positive',
        function: 'FC16',
      });
    });

    it('the mode register is StorCtl_Mod with the charge-limit bit for charge and idle', () => {
      should(map.mode).eql({
        address: BASE + 3,
        function: 'FC16',
        values: { charge: 1, idle: 1, discharge: 0 },
      });
    });

    it('SoC is ChaState with ChaState_SF; status is ChaSt', () => {
      should(map.telemetry.soc).eql({
        address: BASE + 6,
        type: 'uint16',
        scaleFactorAddress: BASE + 20,
      });
      should(map.telemetry.status?.address).equal(BASE + 9);
      should(map.telemetry.status?.states).eql({
        '1': BatteryState.UNAVAILABLE,
        '2': BatteryState.IDLE,
        '3': BatteryState.DISCHARGING,
        '4': BatteryState.CHARGING,
        '5': BatteryState.IDLE,
        '6': BatteryState.IDLE,
        '7': BatteryState.UNAVAILABLE,
      });
      should(map.telemetry.power).be.undefined();
    });

    it('says it is partial', () => {
      should(map.description)
        .match(/PARTIAL/)
        .and.match(/discharge setpoints are refused/);
    });

    const rated = { charge: 5, discharge: 5 };

    it('a charge of 2.5 kW on a 5 kW rating is InWRte 50 %, in steps of InOutWRte_SF', () => {
      const pct = setpointToRegisterValue(2.5, map.setpoint, rated);
      should(pct).equal(50);
      should(encodeValue(pct, map.setpoint, -2)).eql([5000]);
      should(encodeValue(pct, map.setpoint, 0)).eql([50]);
      should(
        registerValueToSetpoint(decodeValue([5000], map.setpoint, -2), map.setpoint, rated),
      ).equal(2.5);
    });

    it('a discharge setpoint is refused by the encoding, before anything is written', () => {
      const pct = setpointToRegisterValue(-2.5, map.setpoint, rated);
      should(pct).equal(-50);
      should(() => encodeValue(pct, map.setpoint, -2)).throw(EncodeError);
    });

    it('idle (0 kW) encodes as InWRte 0', () => {
      should(encodeValue(setpointToRegisterValue(0, map.setpoint, rated), map.setpoint, -2)).eql([
        0,
      ]);
    });

    it('declares its revert timer: InOutWRte_RvrtTms, uint16 seconds, no enable', () => {
      should(map.revert).eql({ address: BASE + 13, type: 'uint16', unit: 's', function: 'FC16' });
      should(map.description).match(/InOutWRte_RvrtTms is written on every connect/);
    });

    it('ChaState decodes with its scale factor', () => {
      should(decodeValue([8750], map.telemetry.soc!, -2)).equal(87.5);
    });
  });

  describe('model 704 (DER AC Controls)', () => {
    const map = SUNSPEC_704(BASE);

    it('the model length and the offsets are those of the definition', () => {
      should(SUNSPEC_OFFSETS[704]).containDeep({
        L: 65,
        WSetEna: 20,
        WSetMod: 21,
        WSet: 22,
        WSetPct: 26,
        WSetEnaRvrt: 28,
        WSetRvrtTms: 29,
        WSet_SF: 53,
        WSetPct_SF: 54,
      });
      should(SUNSPEC_OFFSETS[701]).containDeep({ L: 153, InvSt: 2, W: 8, W_SF: 114 });
      should(SUNSPEC_OFFSETS[713]).containDeep({ L: 7, SoC: 2, Sta: 4, Pct_SF: 6 });
    });

    it('the setpoint is WSet, int32 high word first, W, WSet_SF, positive = discharge', () => {
      should(map.setpoint).eql({
        address: BASE + 22,
        type: 'int32',
        wordOrder: 'high-first',
        scaleFactorAddress: BASE + 53,
        unit: 'W',
        sign: 'discharge-positive',
        function: 'FC16',
        readBack: true,
      });
    });

    it('the mode register is WSetEna, enabled in every mode (idle is 0 W)', () => {
      should(map.mode).eql({
        address: BASE + 20,
        function: 'FC16',
        values: { charge: 1, discharge: 1, idle: 1 },
      });
      should(map.description).match(/WSetMod/);
    });

    it('charging 3 kW is WSet -3000 W (or -300 with WSet_SF 1)', () => {
      const rated = { charge: 10, discharge: 10 };
      const w = setpointToRegisterValue(3, map.setpoint, rated);
      should(w).equal(-3000);
      should(encodeValue(w, map.setpoint, 0)).eql([0xffff, 0xf448]);
      should(encodeValue(w, map.setpoint, 1)).eql([0xffff, 0xfed4]);
      should(encodeValue(setpointToRegisterValue(-3, map.setpoint, rated), map.setpoint, 0)).eql([
        0, 3000,
      ]);
    });

    it('declares its revert timer: WSetRvrtTms, uint32 seconds, enabled by WSetEnaRvrt = 1', () => {
      should(SUNSPEC_OFFSETS[704].WSetRvrt).equal(24);
      should(map.revert).eql({
        address: BASE + 29,
        type: 'uint32',
        wordOrder: 'high-first',
        unit: 's',
        function: 'FC16',
        enable: { address: BASE + 28, value: 1, function: 'FC16' },
      });
      should(map.description).match(/WSetRvrtTms and WSetEnaRvrt = 1 are written on every connect/);
    });

    it('has no telemetry unless the bases of models 701 and 713 are given', () => {
      should(map.telemetry).eql({});
    });

    it('telemetry from models 701 (W, InvSt) and 713 (SoC)', () => {
      const t = SUNSPEC_704(BASE, { model701: 40_200, model713: 40_400 }).telemetry;
      should(t.power).eql({
        address: 40_208,
        type: 'int16',
        scaleFactorAddress: 40_314,
        unit: 'W',
        sign: 'discharge-positive',
      });
      should(t.status?.address).equal(40_202);
      should(t.status?.states).eql({
        '0': BatteryState.UNAVAILABLE,
        '1': BatteryState.IDLE,
        '6': BatteryState.FAULTED,
        '7': BatteryState.IDLE,
      });
      should(t.soc).eql({ address: 40_402, type: 'uint16', scaleFactorAddress: 40_406 });
      // W is int16: -1500 W absorbed (charging) reads as 0xfa24.
      should(decodeValue([0xfa24], t.power!, 0)).equal(-1500);
    });
  });

  describe('resolveMap', () => {
    it('a name gives a validated copy of the shipped map', () => {
      const map = resolveMap('generic');
      should(map).eql(GENERIC_MAP);
      should(map).not.equal(GENERIC_MAP);
      map.setpoint.address = 1;
      should(GENERIC_MAP.setpoint.address).equal(100);
    });

    it('a SunSpec profile with its base address', () => {
      should(resolveMap({ profile: 'sunspec-124', baseAddress: BASE })).eql(SUNSPEC_124(BASE));
      should(resolveMap({ profile: 'sunspec-704', baseAddress: BASE })).eql(SUNSPEC_704(BASE));
      should(resolveMap({ profile: 'sunspec-704', baseAddress: BASE, model713: 40_400 })).eql(
        SUNSPEC_704(BASE, { model713: 40_400 }),
      );
    });

    it('a map object (e.g. parsed from the dialog’s JSON) is validated and copied', () => {
      const json = JSON.parse(JSON.stringify(GENERIC_MAP)) as RegisterMap;
      const map = resolveMap(json);
      should(map).eql(json);
      should(map).not.equal(json);
    });

    it('an unknown name', () => {
      const err = mapError(() => resolveMap('sma'), /unknown register map "sma"/);
      should(err.message).match(/generic, sunspec-124, sunspec-704/);
      mapError(() => resolveMap('toString'), /unknown register map "toString"/);
    });

    it('a SunSpec profile named without its base address', () => {
      const err = mapError(() => resolveMap('sunspec-124'), /needs the address/);
      should(err.field).equal('baseAddress');
    });

    it('an unknown profile', () => {
      const err = mapError(
        () => resolveMap({ profile: 'sunspec-802', baseAddress: 40_000 } as never),
        /unknown register map profile "sunspec-802"; known profiles: sunspec-124, sunspec-704/,
      );
      should(err.field).equal('profile');
    });

    it('a bad base address', () => {
      mapError(
        () => resolveMap({ profile: 'sunspec-124', baseAddress: -1 }),
        /baseAddress must be/,
      );
      mapError(() => resolveMap({ profile: 'sunspec-124', baseAddress: 1.5 }), /got 1.5/);
      mapError(
        () => resolveMap({ profile: 'sunspec-124', baseAddress: 65_536 - 23 }),
        /from 0 to 65512/,
      );
      mapError(
        () => resolveMap({ profile: 'sunspec-124' } as never),
        /baseAddress must be .*got undefined/,
      );
      mapError(
        () => resolveMap({ profile: 'sunspec-704', baseAddress: 40_000, model701: 65_500 }),
        /model 701: model701 must be/,
      );
    });

    it('a bad revert spec, naming the field', () => {
      const revert = { address: 300, type: 'uint16', unit: 's' };
      const bad = (r: unknown) => () => validateRegisterMap({ ...GENERIC_MAP, revert: r });
      should(validateRegisterMap({ ...GENERIC_MAP, revert }).revert).eql(revert);
      const cases: [unknown, string, RegExp][] = [
        [[], 'revert', /revert must be an object/],
        [{ ...revert, address: 70_000 }, 'revert.address', /revert\.address must be/],
        [{ ...revert, type: 'int16' }, 'revert.type', /revert\.type must be uint16 or uint32/],
        [{ ...revert, address: 65_535, type: 'uint32' }, 'revert.address', /runs past/],
        [{ ...revert, wordOrder: 'abcd' }, 'revert.wordOrder', /revert\.wordOrder/],
        [{ ...revert, unit: 'ms' }, 'revert.unit', /revert\.unit must be "s"/],
        [{ ...revert, type: 'uint32', function: 'FC6' }, 'revert.function', /FC6 writes one/],
        [{ ...revert, enable: 1 }, 'revert.enable', /revert\.enable must be an object/],
        [{ ...revert, enable: { value: 1 } }, 'revert.enable.address', /enable\.address/],
        [
          { ...revert, enable: { address: 300, value: 1 } },
          'revert.enable.address',
          /is a register of the revert time/,
        ],
        [
          { ...revert, enable: { address: 301, value: -1 } },
          'revert.enable.value',
          /revert\.enable\.value must be an integer from 0 to 65535, got -1/,
        ],
        [
          { ...revert, enable: { address: 301, value: 1, function: 'FC3' } },
          'revert.enable.function',
          /revert\.enable\.function must be FC16 or FC6/,
        ],
      ];
      for (const [r, field, pattern] of cases) {
        const err = mapError(bad(r), pattern);
        should(err.field).equal(field);
        should(err.message).startWith('register map generic: ');
      }
    });

    it('an invalid map object', () => {
      mapError(
        () => resolveMap({ ...GENERIC_MAP, setpoint: { ...GENERIC_MAP.setpoint, address: -1 } }),
        /setpoint\.address/,
      );
      mapError(() => resolveMap(null as never), /must be an object/);
    });
  });
});
