import { groupConcurrentCalls } from './group-concurrent-calls';

/** A fake `record`: doubles each number; fails a call containing a negative one. */
function recorder() {
  const calls: number[][] = [];
  const fn = async (items: number[]): Promise<number[]> => {
    calls.push(items);
    if (items.some((n) => n < 0)) throw new Error(`refused ${items.join(',')}`);
    return items.map((n) => n * 2);
  };
  return { calls, fn };
}

describe('groupConcurrentCalls', () => {
  it('runs calls made in the same turn as one call and gives each caller its own results, in order', async () => {
    const { calls, fn } = recorder();
    const grouped = groupConcurrentCalls(fn);
    const results = await Promise.all([grouped([1, 2]), grouped([3]), grouped([4, 5, 6])]);
    expect(calls).toEqual([[1, 2, 3, 4, 5, 6]]);
    expect(results).toEqual([[2, 4], [6], [8, 10, 12]]);
  });

  it('runs calls made in different turns separately', async () => {
    const { calls, fn } = recorder();
    const grouped = groupConcurrentCalls(fn);
    expect(await grouped([1])).toEqual([2]);
    expect(await grouped([2])).toEqual([4]);
    expect(calls).toEqual([[1], [2]]);
  });

  it('when the combined call fails, runs each part alone: only the failing caller gets the error', async () => {
    const { calls, fn } = recorder();
    const grouped = groupConcurrentCalls(fn);
    const outcomes = await Promise.allSettled([grouped([1]), grouped([-2, 3]), grouped([4])]);
    expect(calls).toEqual([[1, -2, 3, 4], [1], [-2, 3], [4]]);
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: [2] });
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: new Error('refused -2,3') });
    expect(outcomes[2]).toEqual({ status: 'fulfilled', value: [8] });
  });

  it('a lone call that fails rejects its caller once (no second attempt)', async () => {
    const { calls, fn } = recorder();
    await expect(groupConcurrentCalls(fn)([-1])).rejects.toThrow('refused -1');
    expect(calls).toEqual([[-1]]);
  });

  it('when the combined call returns the wrong number of results, runs each part alone', async () => {
    let first = true;
    const calls: number[][] = [];
    const grouped = groupConcurrentCalls(async (items: number[]) => {
      calls.push(items);
      if (first) {
        first = false;
        return [0];
      }
      return items;
    });
    expect(await Promise.all([grouped([1]), grouped([2])])).toEqual([[1], [2]]);
    expect(calls).toEqual([[1, 2], [1], [2]]);
  });
});
