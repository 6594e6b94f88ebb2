// Command-line options of the benches: `--name value`.

/** A positive number after `--name`, or the fallback when the option is absent. */
export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, not "${process.argv[i + 1] ?? ''}"`);
  return v;
}

/** The text after `--name`, or null when the option is absent. */
export function strArg(name: string): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? null : (process.argv[i + 1] ?? null);
}
