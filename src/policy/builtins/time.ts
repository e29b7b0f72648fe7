// time.* with OPA's semantics (topdown/time.go over Go's time package): nanoseconds since the
// epoch as exact integers, time zones by IANA name, Go's duration syntax (plus OPA's d/w/y).
import { arr, bigintOf, BuiltinError, FloatNumber, isNumber, str, exactInteger, type Value } from './rego-value.js';
import type { Builtin } from './types.js';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const NS_PER_S = 1_000_000_000n;

/** A time as Go holds it for these builtins: seconds since the epoch, nanoseconds, a zone. */
interface Instant {
  sec: bigint;
  nsec: number;
  zone: string; // '' = UTC
}

const safeNs = (sec: bigint, nsec: number): bigint => {
  const ns = sec * NS_PER_S + BigInt(nsec);
  if (ns < INT64_MIN || ns > INT64_MAX) throw new BuiltinError('time outside of valid range');
  return ns;
};

const out = (n: bigint): Value =>
  n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;

// ---- time zones ----------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: zone === 'Local' ? undefined : zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
        era: 'short',
      });
    } catch {
      throw new BuiltinError(`unknown time zone ${zone}`);
    }
    if (formatters.size > 64) formatters.clear();
    formatters.set(zone, f);
  }
  return f;
}

/** The zone's offset from UTC, in seconds, at an instant. */
function offsetAt(zone: string, sec: bigint): number {
  if (zone === '') return 0;
  const ms = Number(sec) * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) throw new BuiltinError('time outside of the zone database');
  const parts = formatter(zone).formatToParts(new Date(ms));
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  let year = get('year');
  if (parts.find((p) => p.type === 'era')?.value === 'BC') year = 1 - year;
  const d = new Date(0);
  d.setUTCFullYear(year, get('month') - 1, get('day'));
  d.setUTCHours(get('hour'), get('minute'), get('second'), 0);
  return Math.round((d.getTime() - ms) / 1000);
}

/** Civil date and clock of an instant in its zone (proleptic Gregorian, as Go). */
function civil(t: Instant) {
  const local = t.sec + BigInt(offsetAt(t.zone, t.sec));
  let days = local / 86400n;
  let rem = local % 86400n;
  if (rem < 0n) {
    rem += 86400n;
    days -= 1n;
  }
  const { y, m, d } = civilFromDays(days);
  const s = Number(rem);
  const weekday = Number((((days + 4n) % 7n) + 7n) % 7n);
  return {
    year: y,
    month: m,
    day: d,
    hour: Math.floor(s / 3600),
    min: Math.floor((s % 3600) / 60),
    sec: s % 60,
    weekday,
  };
}

/** Howard Hinnant's days-to-civil over bigints. */
function civilFromDays(z0: bigint): { y: number; m: number; d: number } {
  const z = z0 + 719468n;
  const era = (z >= 0n ? z : z - 146096n) / 146097n;
  const doe = z - era * 146097n;
  const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
  const y = yoe + era * 400n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const d = doy - (153n * mp + 2n) / 5n + 1n;
  const m = mp < 10n ? mp + 3n : mp - 9n;
  return { y: Number(m <= 2n ? y + 1n : y), m: Number(m), d: Number(d) };
}

function daysFromCivil(y0: number, m: number, d: number): bigint {
  const y = BigInt(m <= 2 ? y0 - 1 : y0);
  const era = (y >= 0n ? y : y - 399n) / 400n;
  const yoe = y - era * 400n;
  const mm = BigInt(m);
  const doy = (153n * (mm > 2n ? mm - 3n : mm + 9n) + 2n) / 5n + BigInt(d) - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * 146097n + doe - 719468n;
}

/** Go's time.Date: normalizes every field, then resolves the wall time in the zone. */
function goDate(
  year: number,
  month: number,
  day: number,
  hour: number,
  min: number,
  sec: number,
  nsec: number,
  zone: string,
): Instant {
  // Normalize the month into [1, 12], carrying into the year.
  let m = month - 1;
  let y = year + Math.floor(m / 12);
  m = ((m % 12) + 12) % 12;
  const days = daysFromCivil(y, m + 1, 1) + BigInt(day - 1);
  const wall = days * 86400n + BigInt(hour) * 3600n + BigInt(min) * 60n + BigInt(sec) + BigInt(Math.floor(nsec / 1e9));
  const ns = ((nsec % 1e9) + 1e9) % 1e9;
  // Go looks up the offset at (wall - offset guess) and corrects once.
  let off = offsetAt(zone, wall);
  const unix = wall - BigInt(off);
  const off2 = offsetAt(zone, unix);
  if (off2 !== off) {
    const alt = wall - BigInt(off2);
    if (offsetAt(zone, alt) === off2) off = off2;
  }
  y = 0;
  return { sec: wall - BigInt(off), nsec: ns, zone };
}

/** OPA's tzTime: a number of ns, or [ns, zone?, layout?]. */
function instantOf(v: Value): { t: Instant; layout: string } {
  let nsValue: Value;
  let zone = '';
  let layout = '';
  if (Array.isArray(v)) {
    if (v.length === 0) throw new BuiltinError('operand 1 must be either number (ns) or [number (ns), string (tz)]');
    nsValue = v[0]!;
    if (!isNumber(nsValue)) throw new BuiltinError('operand 1 must be number');
    if (v.length > 1) {
      const tz = str(v[1]!, 1);
      zone = tz === 'UTC' ? '' : tz;
      if (zone !== '') formatter(zone);
    }
    if (v.length > 2) layout = str(v[2]!, 1);
  } else if (isNumber(v)) nsValue = v;
  else throw new BuiltinError('operand 1 must be either number (ns) or [number (ns), string (tz)]');
  let ns: bigint;
  if (nsValue instanceof FloatNumber) {
    const exact = exactInteger(nsValue.text);
    // OPA converts through a big.Float: a fraction is cut off, a huge value refused.
    ns = exact ?? BigInt(Math.trunc(nsValue.value));
  } else ns = typeof nsValue === 'bigint' ? nsValue : BigInt(Math.trunc(nsValue as number));
  if (ns < INT64_MIN || ns > INT64_MAX) throw new BuiltinError('timestamp too big');
  let sec = ns / NS_PER_S;
  let nsec = Number(ns % NS_PER_S);
  if (nsec < 0) {
    nsec += 1e9;
    sec -= 1n;
  }
  return { t: { sec, nsec, zone }, layout };
}

// ---- durations (Go's time.ParseDuration, OPA's d/w/y) ----------------------------------------

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  µs: 1000n,
  μs: 1000n,
  ms: 1_000_000n,
  s: NS_PER_S,
  m: 60n * NS_PER_S,
  h: 3600n * NS_PER_S,
};

export function parseGoDuration(s0: string): bigint {
  const orig = s0;
  let s = s0;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw new BuiltinError(`time: invalid duration "${orig}"`);
  let d = 0n;
  const LIMIT = 1n << 63n;
  while (s !== '') {
    if (!(s[0] === '.' || (s[0]! >= '0' && s[0]! <= '9'))) throw new BuiltinError(`time: invalid duration "${orig}"`);
    const m = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    const intPart = m[1]!;
    const hasDot = m[2] !== undefined;
    const frac = m[2] ?? '';
    if (intPart === '' && frac === '') throw new BuiltinError(`time: invalid duration "${orig}"`);
    s = s.slice(m[0].length);
    const u = /^[^0-9.]*/.exec(s)![0];
    if (u === '') throw new BuiltinError(`time: missing unit in duration "${orig}"`);
    const unit = UNIT_NS[u];
    if (unit === undefined) throw new BuiltinError(`time: unknown unit "${u}" in duration "${orig}"`);
    s = s.slice(u.length);
    const v = intPart === '' ? 0n : BigInt(intPart);
    if (v > LIMIT / unit) throw new BuiltinError(`time: invalid duration "${orig}"`);
    let total = v * unit;
    if (hasDot && frac !== '') {
      // Go keeps the fraction's digits while they fit, then scales: truncation toward zero.
      let f = 0n;
      let scale = 1n;
      for (const c of frac) {
        if (f > (LIMIT - 1n) / 10n) break;
        f = f * 10n + BigInt(c);
        scale *= 10n;
      }
      total += (f * unit) / scale;
      if (total > LIMIT) throw new BuiltinError(`time: invalid duration "${orig}"`);
    }
    d += total;
    if (d > LIMIT) throw new BuiltinError(`time: invalid duration "${orig}"`);
  }
  if (neg) return -d;
  if (d > LIMIT - 1n) throw new BuiltinError(`time: invalid duration "${orig}"`);
  return d;
}

const COEFF: Record<string, number> = { d: 24, w: 7 * 24, y: 365 * 24 };

function parseExtendedDuration(s: string): bigint {
  if (s === '') throw new BuiltinError(`time: invalid duration "${s}"`);
  if (!/[dwy]/.test(s)) return parseGoDuration(s);
  const m = /^([-+]?)((?:[0-9.]+(?:ms|us|µs|ns|[a-z]))+)$/.exec(s);
  if (!m) throw new BuiltinError(`time: invalid duration "${s}"`);
  let rewritten = m[1]!;
  for (const seg of m[2]!.matchAll(/([0-9.]+)(ms|us|µs|ns|[a-z])/g)) {
    const coeff = COEFF[seg[2]!];
    if (coeff === undefined) {
      rewritten += seg[1]! + seg[2]!;
      continue;
    }
    if (!/^(\d+\.?\d*|\.\d+)$/.test(seg[1]!)) throw new BuiltinError(`time: invalid duration "${s}"`);
    const hours = Number(seg[1]) * coeff;
    rewritten += `${fixedShortest(hours)}h`;
  }
  return parseGoDuration(rewritten);
}

/** strconv.FormatFloat(f, 'f', -1, 64). */
function fixedShortest(f: number): string {
  const s = String(f);
  if (!s.includes('e')) return s;
  const [mant, e] = s.split('e') as [string, string];
  const exp = Number(e);
  const digits = mant.replace('.', '');
  const point = (mant.indexOf('.') < 0 ? mant.length : mant.indexOf('.')) + exp;
  if (point >= digits.length) return digits + '0'.repeat(point - digits.length);
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

// ---- RFC 3339 (Go's strict parser) -----------------------------------------------------------

const daysIn = (m: number, y: number): number =>
  m === 2
    ? (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
      ? 29
      : 28
    : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;

function parseRfc3339(s: string): bigint {
  const fail = () => new BuiltinError(`parsing time "${s}" as "2006-01-02T15:04:05Z07:00": cannot parse`);
  if (s.length < 19 || !/^[\x00-\x7f]*$/.test(s.slice(0, 19))) throw fail();
  const num = (a: number, b: number, min: number, max: number): number => {
    const t = s.slice(a, b);
    if (!/^\d+$/.test(t)) throw fail();
    const n = Number(t);
    if (n < min || n > max) throw fail();
    return n;
  };
  const year = num(0, 4, 0, 9999);
  const month = num(5, 7, 1, 12);
  const day = num(8, 10, 1, daysIn(month, year));
  const hour = num(11, 13, 0, 23);
  const min = num(14, 16, 0, 59);
  const sec = num(17, 19, 0, 59);
  if (!(s[4] === '-' && s[7] === '-' && s[10] === 'T' && s[13] === ':' && s[16] === ':')) throw fail();
  let rest = s.slice(19);
  let nsec = 0;
  // Go's general parser (the fallback of its RFC 3339 fast path) takes ',' too.
  const frac = /^[.,](\d+)/.exec(rest);
  if (frac) {
    nsec = Number(frac[1]!.slice(0, 9).padEnd(9, '0'));
    rest = rest.slice(frac[0].length);
  }
  let offset = 0;
  if (rest !== 'Z') {
    if (rest.length !== 6) throw fail();
    const hr = Number(rest.slice(1, 3));
    const mm = Number(rest.slice(4, 6));
    // The fast path stops at 23:59; the general parser accepts offsets up to 24 hours 60 minutes.
    if (!/^[-+]\d\d:\d\d$/.test(rest) || hr > 24 || mm > 60) throw fail();
    offset = (hr * 60 + mm) * 60 * (rest[0] === '-' ? -1 : 1);
  }
  const t = goDate(year, month, day, hour, min, sec, nsec, '');
  return safeNs(t.sec - BigInt(offset), t.nsec);
}

// ---- formatting (Go layouts) -----------------------------------------------------------------

const NAMED: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006',
  UnixDate: 'Mon Jan _2 15:04:05 MST 2006',
  RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST',
  RFC822Z: '02 Jan 06 15:04 -0700',
  RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST',
  RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
};
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

// Longest first, as Go's nextStdChunk prefers them.
const CHUNKS = [
  'January',
  'Jan',
  'Monday',
  'Mon',
  'MST',
  '2006',
  '-07:00:00',
  '-070000',
  '-07:00',
  '-0700',
  '-07',
  'Z07:00:00',
  'Z070000',
  'Z07:00',
  'Z0700',
  'Z07',
  '002',
  '__2',
  '_2',
  '01',
  '02',
  '03',
  '04',
  '05',
  '06',
  '15',
  'PM',
  'pm',
  '1',
  '2',
  '3',
  '4',
  '5',
];

function formatTime(t: Instant, layout: string): string {
  const c = civil(t);
  const off = offsetAt(t.zone, t.sec);
  const p2 = (n: number) => String(n).padStart(2, '0');
  const zone = (z: boolean, colon: boolean, secs: boolean, hoursOnly: boolean): string => {
    if (z && off === 0) return 'Z';
    const a = Math.abs(off);
    const sign = off < 0 ? '-' : '+';
    const hh = p2(Math.floor(a / 3600));
    const mm = p2(Math.floor((a % 3600) / 60));
    const ss = p2(a % 60);
    if (hoursOnly) return sign + hh;
    return sign + hh + (colon ? ':' : '') + mm + (secs ? (colon ? ':' : '') + ss : '');
  };
  let outText = '';
  let i = 0;
  while (i < layout.length) {
    // Fractional seconds: .000 / .999 (or , as the separator), after a seconds field or anywhere.
    const frac = /^[.,](0+|9+)(?![0-9])/.exec(layout.slice(i));
    if (frac) {
      const digits = frac[1]!.length;
      const all = String(t.nsec).padStart(9, '0').slice(0, digits);
      if (frac[1]![0] === '0') outText += layout[i] + all;
      else {
        const trimmed = all.replace(/0+$/, '');
        if (trimmed) outText += layout[i] + trimmed;
      }
      i += frac[0].length;
      continue;
    }
    const chunk = CHUNKS.find(
      (k) =>
        layout.startsWith(k, i) &&
        !(k === 'Jan' && /^[a-z]/.test(layout.slice(i + 3))) &&
        !(k === 'Mon' && /^[a-z]/.test(layout.slice(i + 3)) && !layout.startsWith('Monday', i)),
    );
    if (!chunk) {
      outText += layout[i];
      i++;
      continue;
    }
    i += chunk.length;
    switch (chunk) {
      case 'January':
        outText += MONTHS[c.month - 1];
        break;
      case 'Jan':
        outText += MONTHS[c.month - 1]!.slice(0, 3);
        break;
      case 'Monday':
        outText += DAYS[c.weekday];
        break;
      case 'Mon':
        outText += DAYS[c.weekday]!.slice(0, 3);
        break;
      case 'MST':
        outText += t.zone === '' ? 'UTC' : zoneAbbrev(t, off);
        break;
      case '2006':
        outText += c.year < 0 ? `-${String(-c.year).padStart(4, '0')}` : String(c.year).padStart(4, '0');
        break;
      case '06':
        outText += p2(((c.year % 100) + 100) % 100);
        break;
      case '01':
        outText += p2(c.month);
        break;
      case '1':
        outText += String(c.month);
        break;
      case '02':
        outText += p2(c.day);
        break;
      case '2':
        outText += String(c.day);
        break;
      case '_2':
        outText += String(c.day).padStart(2, ' ');
        break;
      case '002':
      case '__2': {
        const yday = Number(daysFromCivil(c.year, c.month, c.day) - daysFromCivil(c.year, 1, 1)) + 1;
        outText += chunk === '002' ? String(yday).padStart(3, '0') : String(yday).padStart(3, ' ');
        break;
      }
      case '15':
        outText += p2(c.hour);
        break;
      case '3':
        outText += String(c.hour % 12 === 0 ? 12 : c.hour % 12);
        break;
      case '03':
        outText += p2(c.hour % 12 === 0 ? 12 : c.hour % 12);
        break;
      case '04':
        outText += p2(c.min);
        break;
      case '4':
        outText += String(c.min);
        break;
      case '05':
        outText += p2(c.sec);
        break;
      case '5':
        outText += String(c.sec);
        break;
      case 'PM':
        outText += c.hour >= 12 ? 'PM' : 'AM';
        break;
      case 'pm':
        outText += c.hour >= 12 ? 'pm' : 'am';
        break;
      case '-07:00:00':
        outText += zone(false, true, true, false);
        break;
      case '-070000':
        outText += zone(false, false, true, false);
        break;
      case '-07:00':
        outText += zone(false, true, false, false);
        break;
      case '-0700':
        outText += zone(false, false, false, false);
        break;
      case '-07':
        outText += zone(false, false, false, true);
        break;
      case 'Z07:00:00':
        outText += zone(true, true, true, false);
        break;
      case 'Z070000':
        outText += zone(true, false, true, false);
        break;
      case 'Z07:00':
        outText += zone(true, true, false, false);
        break;
      case 'Z0700':
        outText += zone(true, false, false, false);
        break;
      case 'Z07':
        outText += zone(true, false, false, true);
        break;
    }
  }
  return outText;
}

const shortNames = new Map<string, Intl.DateTimeFormat>();

/**
 * The zone's abbreviation (EST, CEST) where the platform's zone data has one in English, else
 * the offset as Go writes a numeric abbreviation (-03, +0530). Go reads tzdata's own
 * abbreviations, so a zone whose abbreviation is not an English short name (Asia/Kolkata's IST)
 * is written as its offset here.
 */
function zoneAbbrev(t: Instant, off: number): string {
  // English locales each know some zones' abbreviations (en-US: EST, en-GB: CET, en-IN: IST).
  for (const locale of ['en-US', 'en-GB', 'en-IN', 'en-AU']) {
    const key = `${locale}\u0000${t.zone}`;
    let f = shortNames.get(key);
    if (!f) {
      f = new Intl.DateTimeFormat(locale, { timeZone: t.zone === 'Local' ? undefined : t.zone, timeZoneName: 'short' });
      if (shortNames.size > 256) shortNames.clear();
      shortNames.set(key, f);
    }
    const name = f.formatToParts(new Date(Number(t.sec) * 1000)).find((p) => p.type === 'timeZoneName')?.value ?? '';
    if (/^[A-Z]{2,5}$/.test(name)) return name;
  }
  const a = Math.abs(off);
  const h = Math.floor(a / 3600);
  const m = Math.floor((a % 3600) / 60);
  return `${off < 0 ? '-' : '+'}${String(h).padStart(2, '0')}${m ? String(m).padStart(2, '0') : ''}`;
}

// ---- the table -------------------------------------------------------------------------------

export const timeBuiltins: Record<string, Builtin> = {
  'time.now_ns': (_args, state) => out(state.nowNs()),
  'time.parse_rfc3339_ns': ([s]) => out(parseRfc3339(str(s!, 1))),
  'time.parse_duration_ns': ([s]) => out(parseExtendedDuration(str(s!, 1))),
  'time.date': ([x]) => {
    const c = civil(instantOf(x!).t);
    return [c.year, c.month, c.day];
  },
  'time.clock': ([x]) => {
    const c = civil(instantOf(x!).t);
    return [c.hour, c.min, c.sec];
  },
  'time.weekday': ([x]) => DAYS[civil(instantOf(x!).t).weekday]!,
  'time.add_date': ([x, y, m, d]) => {
    const { t } = instantOf(x!);
    const c = civil(t);
    const years = Number(bigintOf(y!, 2));
    const months = Number(bigintOf(m!, 3));
    const days = Number(bigintOf(d!, 4));
    const r = goDate(c.year + years, c.month + months, c.day + days, c.hour, c.min, c.sec, t.nsec, t.zone);
    return out(safeNs(r.sec, r.nsec));
  },
  'time.diff': ([a, b]) => {
    let t1 = instantOf(a!).t;
    let t2 = { ...instantOf(b!).t, zone: t1.zone };
    if (t1.sec > t2.sec || (t1.sec === t2.sec && t1.nsec > t2.nsec)) [t1, t2] = [t2, t1];
    const x = civil(t1);
    const y = civil(t2);
    let year = y.year - x.year;
    let month = y.month - x.month;
    let day = y.day - x.day;
    let hour = y.hour - x.hour;
    let min = y.min - x.min;
    let sec = y.sec - x.sec;
    if (sec < 0) {
      sec += 60;
      min--;
    }
    if (min < 0) {
      min += 60;
      hour--;
    }
    if (hour < 0) {
      hour += 24;
      day--;
    }
    if (day < 0) {
      // Days in t1's month: Go's Date(y1, M1, 32) trick.
      day += daysIn(x.month, x.year);
      month--;
    }
    if (month < 0) {
      month += 12;
      year--;
    }
    return [year, month, day, hour, min, sec];
  },
  'time.format': ([x]) => {
    const { t, layout } = instantOf(x!);
    return formatTime(t, layout === '' ? NAMED.RFC3339Nano! : (NAMED[layout] ?? layout));
  },
};

export { arr };
