import { waitFor } from '../../../../test/support/wait-for';
import { claimOf, fixture, settleTurns, stopDispatchers } from '../../test/support/dispatcher-fixture';

/*
 * The dispatcher against fakes (test/support/dispatcher-fixture.ts). No timing: each test waits for a
 * state, never for a duration.
 */

afterEach(stopDispatchers);

describe('dispatcher: claims ahead, frees a connection at the SMTP answer, records behind it', () => {
  it('when recordings lag, then SMTP sends past the pool size and claiming stops at maxUnrecorded', async () => {
    const f = fixture(100);
    f.smtp.holdRecording = true;
    await f.dispatcher.start();

    // Connections are free at SMTP's answer: far more than the 2 connections' worth went out unrecorded.
    await waitFor(() => f.delivered.length >= 6, { message: 'sends past the pool size' });
    await settleTurns();
    // Bounded: at 6 unrecorded outcomes no further claim; what is already claimed is at most the
    // bound plus the connections and the rows ahead.
    const claimedWhileBlocked = f.claimed.length;
    expect(claimedWhileBlocked).toBeLessThanOrEqual(6 + 2 + 8);
    await settleTurns();
    expect(f.claimed.length).toBe(claimedWhileBlocked);

    // The recorder catches up: claiming resumes and every row is delivered once.
    f.smtp.holdRecording = false;
    f.recordings.forEach((r) => r.resolve());
    await waitFor(() => f.delivered.length === 100, { message: 'every row delivered' });
    await f.dispatcher.stop();
    expect(new Set(f.delivered.map((c) => c.requestId)).size).toBe(100);
    expect(f.released).toEqual([]);
  });

  it('claims in batches ahead of free connections, not one row per freed connection', async () => {
    const f = fixture(200);
    await f.dispatcher.start();
    await waitFor(() => f.delivered.length === 200, { message: 'every row delivered' });
    await f.dispatcher.stop();
    // The first claim fills the two connections; once SMTP's pace is known, claims take rows ahead.
    expect(f.limits[0]).toBe(2);
    expect(Math.max(...f.limits)).toBeGreaterThan(2);
    expect(f.limits.length).toBeLessThan(200 / 2);
  });

  it(
    'when stopped with claimed rows not yet sent, then it gives exactly those back, waits for the sends ' +
      'in SMTP and for every recording',
    async () => {
      const f = fixture(100);
      // A few fast answers make the pace known (rows are then claimed ahead); then SMTP holds its answers.
      f.smtp.answerAtOnce = 4;
      await f.dispatcher.start();
      await waitFor(() => f.delivered.length === 6 && f.queued().length > 0, {
        message: 'rows claimed ahead while both connections wait for SMTP',
      });

      f.smtp.holdRecording = true;
      let stopped = false;
      const stopping = f.dispatcher.stop().then(() => (stopped = true));
      await waitFor(() => f.released.length > 0, { message: 'claimed-but-unsent rows given back' });
      const unsent = f.claimed.filter((c) => !f.delivered.includes(c));
      expect(f.released.map((c) => c.requestId).sort()).toEqual(unsent.map((c) => c.requestId).sort());

      // The sends in SMTP answer: stop still waits for their recordings.
      f.answerAll();
      await settleTurns();
      expect(stopped).toBe(false);
      f.recordings.forEach((r) => r.resolve());
      await stopping;
      expect(stopped).toBe(true);
      // Nothing started after the stop.
      expect(f.delivered.length + f.released.length).toBe(f.claimed.length);
    },
  );

  it('when half-open, then one trial at a time and nothing claimed ahead', async () => {
    const f = fixture(10);
    f.smtp.answerAtOnce = 0;
    f.setState('half-open');
    await f.dispatcher.start();
    await waitFor(() => f.delivered.length === 1, { message: 'the trial' });
    f.dispatcher.kick();
    await settleTurns();
    expect(f.claimed).toHaveLength(1);
    expect(f.delivered).toHaveLength(1);

    f.answers.forEach((a) => a.resolve());
    await waitFor(() => f.delivered.length === 2, { message: 'the next trial' });
    expect(f.limits.every((l) => l === 1)).toBe(true);
    expect(f.claimed).toHaveLength(2);
    f.answerAll();
    await f.dispatcher.stop();
  });

  it('when every breaker opens, then the rows it queued go back and the due rows are deferred', async () => {
    const deferWhileOpen = jest.fn(async () => 0);
    const f = fixture(100, { deferWhileOpen, nextAdmitAt: () => new Date(Date.now() + 60_000) });
    f.smtp.answerAtOnce = 4;
    await f.dispatcher.start();
    await waitFor(() => f.delivered.length === 6 && f.queued().length > 0, { message: 'rows claimed ahead' });
    const queued = f.queued();

    f.setState('open');
    await waitFor(() => deferWhileOpen.mock.calls.length > 0, { message: 'deferWhileOpen' });
    expect(f.released.map((c) => c.requestId).sort()).toEqual(queued.map((c) => c.requestId).sort());
    f.answerAll();
    await f.dispatcher.stop();
    expect(f.delivered.filter((c) => queued.includes(c))).toEqual([]);
  });

  it('when a claimed row waits longer than maxQueueMs for a connection, then it is given back, not sent', async () => {
    const f = fixture(40, { maxQueueMs: 1, pollMs: 10 });
    f.smtp.answerAtOnce = 4;
    await f.dispatcher.start();
    await waitFor(() => f.released.length > 0, { message: 'stale rows given back' });
    const deliveredIds = new Set(f.delivered.map((c) => c.requestId));
    expect(f.released.some((c) => deliveredIds.has(c.requestId))).toBe(false);
    f.answerAll();
    await f.dispatcher.stop();
  });

  it('when the intake hands over rows it claimed, then they go to free connections without a claim', async () => {
    const f = fixture(0);
    f.smtp.answerAtOnce = 0;
    await f.dispatcher.start();
    expect(f.dispatcher.room()).toBe(2);
    const fromIntake = [claimOf(), claimOf()];
    f.dispatcher.adopt(fromIntake);
    await waitFor(() => f.delivered.length === 2, { message: 'both sent' });
    expect(f.delivered).toEqual(fromIntake);
    // Both connections busy, SMTP's pace unknown: no room until one answers.
    expect(f.dispatcher.room()).toBe(0);
    f.answerAll();
    // Free again, and SMTP's pace now known: room for both connections and the rows ahead (claimAhead 8).
    await waitFor(() => f.dispatcher.room() === 2 + 8, { message: 'connections free again' });
    expect(f.claimed).toEqual([]);
  });

  it('when no breaker is closed, or it is stopping, then room() is 0 and rows handed over go back', async () => {
    const f = fixture(0);
    await f.dispatcher.start();
    f.setState('half-open');
    expect(f.dispatcher.room()).toBe(0);
    f.setState('open');
    expect(f.dispatcher.room()).toBe(0);
    f.setState('closed');
    expect(f.dispatcher.room()).toBe(2);

    const late = claimOf();
    const stopping = f.dispatcher.stop();
    expect(f.dispatcher.room()).toBe(0);
    f.dispatcher.adopt([late]);
    await stopping;
    await waitFor(() => f.released.length === 1, { message: 'handed-over row given back' });
    expect(f.released).toEqual([late]);
    expect(f.delivered).toEqual([]);
  });
});
