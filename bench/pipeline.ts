// The decision pipeline, stage by stage (issue 16 part 4): from a probe's failing verdict to the desired
// state applied on both LBs and the egress router. Three in-process NodeControllers (lb1, lb2, er1) on a
// real etcd on loopback (fast raft flags), each with its own EtcdStore (bench/inproc.ts). Per transition,
// from the moment the probes of lb1 and lb2 report fw1 down (or up again, alternating):
//   observation written  lb1's putObservation of the verdict resolved
//   decided              the leader's putDesired carrying it started (decide() done)
//   desired written      that putDesired resolved
//   applied <node>       <node>'s actuator was asked to apply a desired state with the new fw1 state
//
//   npx tsc -p tsconfig.json && node dist/bench/pipeline.js [--runs 50] [--members 3] [--json out.json]
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { EtcdCluster } from '../test/integration/etcd-cluster';
import { arg, strArg } from './args';
import { NODES, sandwichConfig, StageRecorder, stageRows, startNode, stopNodes, until, type InprocNode } from './inproc';

async function main(): Promise<void> {
  const runs = arg('runs', 50);
  const members = arg('members', 3);
  const load = [loadavg()[0]!];
  const cluster = await EtcdCluster.start({ size: members });
  const config = sandwichConfig('pipeline-bench', cluster.endpoints);
  const recorder = new StageRecorder();
  const nodes: InprocNode[] = [];
  try {
    for (const name of NODES) {
      const n = await startNode(config, name, (s) => recorder.wrap(s));
      nodes.push(n);
      if (name === 'lb1') await until('lb1 leads', () => (n.node.isLeader ? true : null));
    }
    const samples = await recorder.measure(nodes, runs);
    load.push(loadavg()[0]!);
    console.log([
      `Pipeline (bench/pipeline.ts): ${runs} transitions each way, ${members}-member etcd on loopback, 3 in-process controllers, load average ${load.map((l) => l.toFixed(1)).join('→')}`,
      '',
      '| transition | stage | p50 | p99 | max |',
      '|---|---|---|---|---|',
      ...stageRows(samples),
    ].join('\n'));
    const out = strArg('json');
    if (out) writeFileSync(out, JSON.stringify({ runs, members, load, samples }, null, 2) + '\n');
  } finally {
    await stopNodes(nodes);
    await cluster.destroy();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/pipeline: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
