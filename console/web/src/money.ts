// Exact money for totals: amounts arrive as decimal strings ("12000.00") and are summed as
// integers of their smallest unit, never as floats.

export type Money = { value: string; currency: string };

/** A decimal string as an integer and its scale: "12.5" is 125n at scale 1. */
function parse(value: string): [bigint, number] {
  const [whole, fraction = ""] = value.split(".");
  return [BigInt(whole + fraction), fraction.length];
}

function scaled(value: string, scale: number): bigint {
  const [n, s] = parse(value);
  return n * 10n ** BigInt(scale - s);
}

function format(n: bigint, scale: number): string {
  const negative = n < 0n;
  const digits = (negative ? -n : n).toString().padStart(scale + 1, "0");
  const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return negative ? `-${text}` : text;
}

/** Sums per currency; each total keeps the largest scale of its parts. */
export function totals(amounts: Money[]): Money[] {
  const scales = new Map<string, number>();
  for (const a of amounts) scales.set(a.currency, Math.max(scales.get(a.currency) ?? 0, parse(a.value)[1]));
  const sums = new Map<string, bigint>();
  for (const a of amounts) sums.set(a.currency, (sums.get(a.currency) ?? 0n) + scaled(a.value, scales.get(a.currency)!));
  return [...sums].sort(([a], [b]) => a.localeCompare(b)).map(([currency, n]) => ({ currency, value: format(n, scales.get(currency)!) }));
}

/** `percent` of an amount, rounded half away from zero to the amount's scale. */
export function weighted(amount: Money, percent: number): Money {
  const [n, scale] = parse(amount.value);
  const product = n * BigInt(percent);
  const half = product < 0n ? -50n : 50n;
  return { currency: amount.currency, value: format((product + half) / 100n, scale) };
}

/** For people: grouped digits, the currency after. */
export function show(m: Money): string {
  const [whole, fraction] = m.value.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${fraction !== undefined ? `${grouped}.${fraction}` : grouped} ${m.currency}`;
}
