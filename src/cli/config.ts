/**
 * Configuration: each setting has one name, spelled as a flag (`--data-dir`) and as an
 * environment variable (`CAIRN_DATA_DIR`); a flag wins over the environment, which wins over
 * the default.
 */
export interface SettingSpec {
  flag: string;
  env: string;
  defaultValue: string | undefined;
  help: string;
  repeatable?: boolean;
}

export function parseFlags(argv: string[]): { flags: Map<string, string[]>; positionals: string[] } {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (!argument.startsWith("--")) {
      positionals.push(argument);
      continue;
    }
    const equals = argument.indexOf("=");
    let name: string;
    let value: string;
    if (equals >= 0) {
      name = argument.slice(2, equals);
      value = argument.slice(equals + 1);
    } else {
      name = argument.slice(2);
      const next = argv[index + 1];
      if (next === undefined || next.startsWith("--")) value = "true";
      else {
        value = next;
        index++;
      }
    }
    const list = flags.get(name) ?? [];
    list.push(value);
    flags.set(name, list);
  }
  return { flags, positionals };
}

export class Settings {
  constructor(
    private readonly specs: readonly SettingSpec[],
    private readonly flags: Map<string, string[]>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    for (const name of flags.keys()) {
      if (!specs.some((spec) => spec.flag === name)) throw new UsageError(`unknown flag --${name}`);
    }
  }

  private spec(flag: string): SettingSpec {
    const spec = this.specs.find((candidate) => candidate.flag === flag);
    if (spec === undefined) throw new Error(`setting ${flag} is not declared`);
    return spec;
  }

  get(flag: string): string | undefined {
    const spec = this.spec(flag);
    const fromFlag = this.flags.get(flag);
    if (fromFlag !== undefined) return fromFlag[fromFlag.length - 1];
    return this.env[spec.env] ?? spec.defaultValue;
  }

  require(flag: string): string {
    const value = this.get(flag);
    if (value === undefined || value === "") throw new UsageError(`--${flag} (or ${this.spec(flag).env}) is required`);
    return value;
  }

  list(flag: string): string[] {
    const spec = this.spec(flag);
    const fromFlag = this.flags.get(flag);
    if (fromFlag !== undefined) return fromFlag;
    const fromEnv = this.env[spec.env];
    if (fromEnv !== undefined && fromEnv !== "") return fromEnv.split(",");
    return spec.defaultValue === undefined ? [] : [spec.defaultValue];
  }

  integer(flag: string): number | undefined {
    const value = this.get(flag);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a non-negative integer, got ${value}`);
    return Number(value);
  }

  static help(specs: readonly SettingSpec[]): string {
    return specs
      .map((spec) => `  --${spec.flag.padEnd(18)} ${spec.env.padEnd(28)} ${spec.help}${spec.defaultValue ? ` (default ${spec.defaultValue})` : ""}`)
      .join("\n");
  }
}

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseListenAddress(value: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(value);
  if (match === null) throw new UsageError(`listen address must be host:port, got ${value}`);
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
}
