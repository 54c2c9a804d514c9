import { createBackgroundWork } from './background-work';

describe('background work', () => {
  it('drain waits for tracked work, including work tracked while draining', async () => {
    const background = createBackgroundWork();
    const done: string[] = [];
    let release!: () => void;
    const first = new Promise<void>((resolve) => (release = resolve)).then(() => {
      done.push('first');
      background.track(Promise.resolve().then(() => void done.push('second')));
    });
    background.track(first);
    expect(background.inFlight()).toBe(1);

    const drained = background.drain().then(() => done.push('drained'));
    release();
    await drained;
    expect(done).toEqual(['first', 'second', 'drained']);
    expect(background.inFlight()).toBe(0);
  });

  it('a failed piece of work does not stop the drain', async () => {
    const background = createBackgroundWork();
    background.track(Promise.reject(new Error('boom')));
    await expect(background.drain()).resolves.toBeUndefined();
  });
});
