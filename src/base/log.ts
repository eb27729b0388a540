/**
 * A small structured logger: one JSON line per event on stderr. Secrets never go through it;
 * callers pass ids, not credentials.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minimumLevel: LogLevel = (process.env.CAIRN_LOG_LEVEL as LogLevel | undefined) ?? "info";

export function setLogLevel(level: LogLevel): void {
  minimumLevel = level;
}

function emit(level: LogLevel, fields: Record<string, unknown>, message: string): void {
  if (LEVEL_RANK[level] < LEVEL_RANK[minimumLevel]) return;
  const record: Record<string, unknown> = { t: new Date().toISOString(), level, msg: message };
  for (const [name, value] of Object.entries(fields)) {
    record[name] = value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
  }
  process.stderr.write(JSON.stringify(record) + "\n");
}

export const log = {
  debug: (fields: Record<string, unknown>, message: string) => emit("debug", fields, message),
  info: (fields: Record<string, unknown>, message: string) => emit("info", fields, message),
  warn: (fields: Record<string, unknown>, message: string) => emit("warn", fields, message),
  error: (fields: Record<string, unknown>, message: string) => emit("error", fields, message),
};
