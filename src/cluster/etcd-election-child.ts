/**
 * Child process for the election tests (not a test itself): campaigns for a key in etcd and
 * prints `elected <createRevision>` when it wins, then holds the term until it is SIGKILLed
 * (no resignation: its lease must expire by itself) or SIGTERMed (it resigns).
 * Usage: node etcd-election-child.js '<json: {endpoint, key, value, ttlSeconds}>'
 */
import { EtcdClient } from "./etcd-client.js";
import { EtcdElection } from "./etcd-election.js";

interface ChildOptions {
  endpoint: string;
  key: string;
  value: string;
  ttlSeconds: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const client = new EtcdClient(options.endpoint);
const election = new EtcdElection({
  client,
  key: options.key,
  value: options.value,
  ttlSeconds: options.ttlSeconds,
  onElected: async (term) => {
    process.stdout.write(`elected ${term.createRevision}\n`);
  },
  onDemoted: async (reason) => {
    process.stdout.write(`demoted ${reason}\n`);
  },
});
election.start();
process.on("SIGTERM", () => {
  void election.resign().then(() => {
    client.close();
    process.exit(0);
  });
});
