/**
 * The null server baseline: node:http in its own process, draining any request body and
 * answering 200 with a 4 KiB body. What Cairn's gateway costs is measured against it.
 */
import * as http from "node:http";

const RESPONSE_BODY = Buffer.alloc(4096, 0x61);

const server = http.createServer((request, response) => {
  request.on("data", () => {}); // drain: a PUT's body is read and dropped
  request.on("end", () => {
    response.writeHead(200, { "content-type": "application/octet-stream", "content-length": RESPONSE_BODY.length });
    response.end(RESPONSE_BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(JSON.stringify({ event: "listening", role: "null-server", port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
