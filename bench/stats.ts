/** Percentiles over an unsorted sample, nearest-rank. */
export function percentiles(samples: readonly number[], ranks: readonly number[]): number[] {
  if (samples.length === 0) return ranks.map(() => NaN);
  const sorted = Float64Array.from(samples).sort();
  return ranks.map((rank) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((rank / 100) * sorted.length) - 1))]!);
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
