import { spawn, type ChildProcess } from 'node:child_process';
import { CpuSampler, processWakeups } from '../../bench/proc-stats';

/** A node process whose only work is a timer every `everyMs` (each firing: one wake-up of its main thread). */
function ticking(everyMs: number): ChildProcess {
  return spawn(process.execPath, ['-e', `setInterval(() => {}, ${everyMs})`], { stdio: 'ignore' });
}

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

describe('bench/proc-stats: wake-ups counted from /proc', () => {
  it('when a process wakes on a 10 ms timer, then its wake-ups over a window grow with it; a quiet one stays low', async () => {
    const busy = ticking(10);
    const quiet = ticking(60_000);
    try {
      await new Promise((r) => setTimeout(r, 500)); // both started and settled
      const sampler = new CpuSampler({ busy: () => [busy.pid as number], quiet: () => [quiet.pid as number] });
      await sampler.start();
      await new Promise((r) => setTimeout(r, 1_000));
      const { components } = await sampler.stop();
      // ~100 timer firings in a second; the quiet process wakes only for its runtime's own housekeeping.
      expect(components.busy?.wakeups).toBeGreaterThanOrEqual(60);
      expect(components.quiet?.wakeups).toBeLessThan(30);
    } finally {
      await Promise.all([stop(busy), stop(quiet)]);
    }
  });

  it('when the process is gone, then there is no figure', async () => {
    const child = ticking(10);
    const pid = child.pid as number;
    expect(processWakeups(pid)).toBeGreaterThanOrEqual(0);
    await stop(child);
    expect(processWakeups(pid)).toBeUndefined();
  });
});
