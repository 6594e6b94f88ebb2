// Deletes conntrack entries by mark (`conntrack -D -m N`), so flows of a dead firewall are re-marked on their next packet.
import { CommandFailedError, formatCommand, type CommandRunner } from './runner';
import { DriverInputError, KernelParseError, stderrOf, timer, wrapCommandError, type ReconcileResult } from './types';

const DRIVER = 'conntrack';
// conntrack-tools prints the count on stderr: "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted."
const COUNT_RE = /(\d+) flow entries have been deleted/;

export interface FlushResult extends ReconcileResult {
  readonly deleted: number;
}

export class ConntrackDriver {
  constructor(private readonly runner: CommandRunner) {}

  /** Deletes every entry with this mark (conntrack's default family is IPv4). Zero matching entries is not an error (conntrack exits 1 then). */
  async flushMark(mark: number, family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<FlushResult> {
    const elapsed = timer();
    if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new DriverInputError(DRIVER, `mark ${mark} is not 0..4294967295`);
    const args = ['-D', ...(family === 'ipv6' ? ['-f', 'ipv6'] : []), '-m', String(mark)];
    const cmd = formatCommand('conntrack', args);
    let stderr: string;
    try {
      stderr = (await this.runner.run('conntrack', args)).stderr;
    } catch (e) {
      const err = stderrOf(e);
      const m = COUNT_RE.exec(err);
      if (!(e instanceof CommandFailedError && e.exitCode === 1 && m && m[1] === '0')) throw wrapCommandError(DRIVER, 'conntrack', args, e);
      stderr = err;
    }
    const m = COUNT_RE.exec(stderr);
    // A runner that shows no stderr (plan, fakes) leaves the count unknown: report -1 rather than guess.
    if (!m && stderr.trim() !== '') throw new KernelParseError(DRIVER, cmd, stderr.trim().split('\n').pop() ?? '', 'no "N flow entries have been deleted" line');
    const deleted = m ? Number(m[1]) : -1;
    return { driver: DRIVER, differences: deleted > 0 ? [`${deleted} ${family === 'ipv6' ? 'IPv6 ' : ''}conntrack entr${deleted === 1 ? 'y' : 'ies'} with mark ${mark}`] : [], commands: [cmd], deleted, durationMs: elapsed() };
  }
}
