// Runs inside a network namespace (`ip netns exec NS node rtnl-agent.js`): the rtnetlink drivers of dist/ driven
// by line-delimited JSON requests on stdin; answers and kernel-change reports are JSON lines on stdout.
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports -- a plain node script (no TypeScript in the namespace), over dist/ */
const { createInterface } = require('node:readline');
const dist = (m) => require(`../../dist/failover/${m}`);
const { netlinkKernels } = dist('netlink/kernels');
const { KernelWatch } = dist('netlink/kernel-watch');
const { RoutesDriver } = dist('routes');
const { AddressesDriver } = dist('addresses');

const k = netlinkKernels(2000);
if ('error' in k) {
  process.stdout.write(JSON.stringify({ fatal: k.error }) + '\n');
  process.exit(1);
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let watch = null;
const methods = {
  port: async () => k.rtnl.port,
  routesReconcile: ({ family, want }) => new RoutesDriver(k.routes, { family }).reconcile(want),
  routesApply: ({ family, ops }) => k.routes.apply(family, ops),
  routesRead: async ({ family, tables }) => {
    const s = await k.routes.read(family, tables);
    return { rules: s.rules, tables: [...s.tables.entries()] };
  },
  addressesReconcile: ({ want }) => new AddressesDriver(k.addresses).reconcile(want),
  watch: async (i) => {
    const interest = { tables4: new Set(i.tables4), tables6: new Set(i.tables6), rulePriorities: new Set(i.rulePriorities), devs: new Set(i.devs), addresses: new Set(i.addresses) };
    watch = new KernelWatch(k.rtnl, () => interest, (c) => out({ change: c }));
    watch.start();
    return true;
  },
};
let pending = 0;
let closing = false;
const finish = () => {
  if (!closing || pending) return;
  watch?.close();
  k.rtnl.close();
};
createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, method, args } = JSON.parse(line);
  pending++;
  try {
    out({ id, ok: true, value: (await methods[method](args ?? {})) ?? null });
  } catch (e) {
    out({ id, ok: false, error: { name: e.name, message: e.message, code: e.code, object: e.object, driver: e.driver } });
  }
  pending--;
  finish();
}).on('close', () => {
  closing = true;
  finish();
});
