import { RecentAttempts } from './recent-attempts';

describe('RecentAttempts', () => {
  it('given many successes, when the last five attempts time out, then it reports an outage at the third', () => {
    const recent = new RecentAttempts(5, 50);
    for (let i = 0; i < 100; i++) recent.record(null);
    recent.record('timeout');
    recent.record('timeout');
    expect(recent.outage()).toBe(false);
    recent.record('timeout');
    expect(recent.outage()).toBe(true);
  });

  it('given fewer attempts than its size, when all of them failed, then it reports no outage yet', () => {
    const recent = new RecentAttempts(5, 50);
    for (let i = 0; i < 4; i++) recent.record('connection');
    expect(recent.outage()).toBe(false);
    recent.record('connection');
    expect(recent.outage()).toBe(true);
  });

  it('given per-recipient answers (4xx, rejected), when they fill the window, then it reports no outage', () => {
    const recent = new RecentAttempts(5, 50);
    for (let i = 0; i < 5; i++) recent.record(i % 2 === 0 ? 'unknown' : 'rejected');
    expect(recent.outage()).toBe(false);
  });

  it('given auth failures, when they are most of the window, then it reports an outage', () => {
    const recent = new RecentAttempts(5, 50);
    recent.record(null);
    recent.record(null);
    for (let i = 0; i < 3; i++) recent.record('auth');
    expect(recent.outage()).toBe(true);
  });

  it(
    'given exactly the threshold, when half of the window failed, then it reports no outage ' +
      '(more than, like opossum)',
    () => {
      const recent = new RecentAttempts(4, 50);
      recent.record(null);
      recent.record(null);
      recent.record('timeout');
      recent.record('timeout');
      expect(recent.outage()).toBe(false);
    },
  );

  it('given an outage, when it is cleared, then it starts over', () => {
    const recent = new RecentAttempts(3, 50);
    for (let i = 0; i < 3; i++) recent.record('timeout');
    expect(recent.outage()).toBe(true);
    recent.clear();
    expect(recent.outage()).toBe(false);
  });
});
