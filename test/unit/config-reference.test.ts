import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../controller/config';
import { configReference, readSchemaSource } from '../../controller/config-reference';

const ROOT = join(__dirname, '..', '..');

describe('docs/config-reference.md', () => {
  test('is what scripts/gen-config-reference makes from the current schema', () => {
    const committed = readFileSync(join(ROOT, 'docs', 'config-reference.md'), 'utf8');
    const fresh = configReference(readFileSync(join(ROOT, 'controller', 'config.ts'), 'utf8'));
    // On failure: run scripts/gen-config-reference and commit docs/config-reference.md.
    expect(committed).toBe(fresh);
  });

  test('covers every top-level key and nested section, with defaults and limits from the schema', () => {
    const doc = configReference(readFileSync(join(ROOT, 'controller', 'config.ts'), 'utf8'));
    for (const section of ['(top level)', 'store (kind: "etcd")', 'timing', 'policy', 'nodes[]', 'nodes[].probe', 'firewalls[]', 'checks[]', 'services[]', 'vipGroups[]', 'vipGroups[].garp', 'egress', 'events', 'api']) {
      expect(doc).toContain(`## \`${section}\``);
    }
    expect(doc).toMatch(/\| `holdDownMs` \| integer \|  \| `10000` \| 0 – 3600000 \| Failback waits this long/);
    expect(doc).toMatch(/\| `listen` \| string \| yes \|/);
  });

  test('reads doc comments and schema references from the source', () => {
    const src = readSchemaSource([
      'const AbcSchema = z.strictObject({',
      '  /** First line',
      '   *  second line. */',
      '  speedMs: ms(1, 2),',
      '  child: DefSchema.optional(),',
      '});',
    ].join('\n'));
    expect(src.docs.get('AbcSchema')?.get('speedMs')).toBe('First line second line.');
    expect(src.refs.get('AbcSchema')?.get('child')).toBe('DefSchema');
  });
});

describe('deploy/examples', () => {
  test('every example config passes check-config, with 2 LBs, 2 firewalls and 1-2 egress routers', () => {
    const files = readdirSync(join(ROOT, 'deploy', 'examples')).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(['2lb-2fw-1er.yaml', '2lb-2fw-2er.yaml', 'active-active-2lb-2fw-1er.yaml', 'dual-stack-2lb-2fw-1er.yaml']);
    for (const f of files) {
      const c = loadConfig(join(ROOT, 'deploy', 'examples', f));
      expect(c.nodes.filter((n) => n.role === 'ingress')).toHaveLength(2);
      expect(c.firewalls).toHaveLength(2);
      expect(c.nodes.filter((n) => n.role === 'egress').length).toBe(Number(/(\d)er\.yaml$/.exec(f)![1]));
      expect(c.api).toBeDefined();
    }
  });
});
