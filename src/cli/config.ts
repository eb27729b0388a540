/**
 * Configuration: each setting has one name, spelled as a flag (`--data-dir`), as an environment
 * variable (`CAIRN_DATA_DIR`) and as a key of the optional JSON config file (`"data-dir"`,
 * given by `--config path` or CAIRN_CONFIG). A flag wins over the environment, which wins over
 * the file, which wins over the default. A repeatable setting takes a JSON array in the file.
 */
import { readFileSync } from "node:fs";

/** A config file larger than this is not a config file. */
const CONFIG_FILE_SIZE_BYTES_MAX = 1024 * 1024;

/** Every role takes it: where to read the rest of its settings from. */
export const CONFIG_SETTING: SettingSpec = {
  flag: "config",
  env: "CAIRN_CONFIG",
  defaultValue: undefined,
  help: "JSON file of settings, keyed by flag name (flags and environment override it)",
};

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
    private readonly file: Map<string, string[]> = new Map(),
  ) {
    for (const name of flags.keys()) {
      if (!specs.some((spec) => spec.flag === name)) throw new UsageError(`unknown flag --${name}`);
    }
  }

  /**
   * Settings of a role from its flags, the environment and the config file named by --config
   * (or CAIRN_CONFIG). `specs` gets CONFIG_SETTING added when it lacks it.
   */
  static load(specs: readonly SettingSpec[], flags: Map<string, string[]>, env: NodeJS.ProcessEnv = process.env): Settings {
    const all = specs.some((spec) => spec.flag === CONFIG_SETTING.flag) ? specs : [...specs, CONFIG_SETTING];
    const path = new Settings(all, flags, env).get(CONFIG_SETTING.flag);
    return new Settings(all, flags, env, path === undefined || path === "" ? new Map() : readConfigFile(path, all));
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
    const fromFile = this.file.get(flag);
    return this.env[spec.env] ?? (fromFile !== undefined ? fromFile[fromFile.length - 1] : undefined) ?? spec.defaultValue;
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
    const fromFile = this.file.get(flag);
    if (fromFile !== undefined) return fromFile;
    return spec.defaultValue === undefined ? [] : [spec.defaultValue];
  }

  integer(flag: string): number | undefined {
    const value = this.get(flag);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a non-negative integer, got ${value}`);
    return Number(value);
  }

  /** "true"/"1" or "false"/"0" (a flag given alone is "true"); undefined when unset. */
  boolean(flag: string): boolean | undefined {
    const value = this.get(flag);
    if (value === undefined || value === "") return undefined;
    if (value === "true" || value === "1") return true;
    if (value === "false" || value === "0") return false;
    throw new UsageError(`--${flag} must be true or false, got ${value}`);
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

/**
 * Read a JSON config file: one object whose keys are flag names (without dashes) and whose
 * values are strings, numbers, booleans, or arrays of them (repeatable settings). A key no
 * setting of this role has is an error, as an unknown flag is.
 */
export function readConfigFile(path: string, specs: readonly SettingSpec[]): Map<string, string[]> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  if (text.length > CONFIG_FILE_SIZE_BYTES_MAX) throw new UsageError(`config file ${path} is over ${CONFIG_FILE_SIZE_BYTES_MAX} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`config file ${path} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError(`config file ${path} must hold one JSON object`);
  const values = new Map<string, string[]>();
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    const spec = specs.find((candidate) => candidate.flag === name);
    if (spec === undefined || name === CONFIG_SETTING.flag) throw new UsageError(`config file ${path}: unknown setting "${name}"`);
    const items = Array.isArray(value) ? value : [value];
    if (Array.isArray(value) && !spec.repeatable) throw new UsageError(`config file ${path}: "${name}" takes one value, not a list`);
    values.set(
      name,
      items.map((item) => {
        if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") return String(item);
        throw new UsageError(`config file ${path}: "${name}" must be a string, number or boolean`);
      }),
    );
  }
  return values;
}
