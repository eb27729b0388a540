/**
 * A request's (or any readable stream's) whole body as one Buffer, read by events: `for await`
 * over the stream costs an async iterator per request, more than hashing a small PUT's body.
 */
import type { Readable } from "node:stream";

/**
 * Resolves with the body; rejects as the stream's async iterator would (its 'error', or a
 * premature close). Past `sizeBytesMax` it rejects with `tooLarge()` and destroys the stream, as
 * leaving a `for await` loop early does.
 */
export function readWholeBody(
  stream: Readable,
  limit?: { sizeBytesMax: number; tooLarge: () => Error },
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const pieces: Buffer[] = [];
    let sizeBytes = 0;
    const onData = (piece: Buffer) => {
      pieces.push(piece);
      sizeBytes += piece.length;
      if (limit !== undefined && sizeBytes > limit.sizeBytesMax) {
        cleanUp();
        reject(limit.tooLarge());
        stream.destroy();
      }
    };
    const onEnd = () => {
      cleanUp();
      resolve(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, sizeBytes));
    };
    const onError = (error: Error) => {
      cleanUp();
      reject(error);
    };
    // 'close' before 'end': the stream was destroyed (peer gone) before its body was read.
    const onClose = () => {
      cleanUp();
      reject(Object.assign(new Error("premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" }));
    };
    const cleanUp = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.off("close", onClose);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("close", onClose);
  });
}
