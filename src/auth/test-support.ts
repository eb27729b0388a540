/**
 * Helpers shared by the auth tests (not exported from index.ts): AWS's example credentials,
 * a lookup over a fixed key table, and a runner that pushes a body through a decoder in pieces.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import type { CredentialLookup } from "./sigv4.js";
import type { PayloadDecoder } from "./payload-decoder.js";

export const AWS_EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
export const AWS_EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/** 20130524T000000Z, the instant of every AWS S3 SigV4 example. */
export const AWS_EXAMPLE_NOW_MS = Date.UTC(2013, 4, 24, 0, 0, 0);

export function lookupOf(keys: Record<string, string>): CredentialLookup {
  return async (accessKeyId) => {
    const secretAccessKey = keys[accessKeyId];
    return secretAccessKey === undefined ? undefined : { secretAccessKey, userId: `user-of-${accessKeyId}` };
  };
}

export const exampleLookup = lookupOf({ [AWS_EXAMPLE_ACCESS_KEY_ID]: AWS_EXAMPLE_SECRET_ACCESS_KEY });

/** Splits a body into pieces of `pieceSizeBytes` (1 = every TCP boundary the body could have). */
export function piecesOf(body: Buffer, pieceSizeBytes: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += pieceSizeBytes) {
    pieces.push(body.subarray(offset, offset + pieceSizeBytes));
  }
  return pieces;
}

export interface DecodeOutcome {
  data: Buffer;
  error: unknown;
}

export async function decodeAll(decoder: PayloadDecoder, pieces: Buffer[]): Promise<DecodeOutcome> {
  const out: Buffer[] = [];
  let error: unknown = undefined;
  try {
    await pipeline(
      Readable.from(pieces, { objectMode: false }),
      decoder,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          out.push(chunk);
          callback();
        },
      }),
    );
  } catch (caught) {
    error = caught;
  }
  return { data: Buffer.concat(out), error };
}
