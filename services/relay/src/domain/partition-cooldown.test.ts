import { createPartitionCooldown } from './partition-cooldown';

describe('partition cooldown', () => {
  it(
    'when a partition failed, then only that partition cools down, longer after each failure, and a success ' +
      'clears it',
    () => {
      let now = 0;
      const cooldown = createPartitionCooldown({ baseMs: 100, maxMs: 1_000 }, () => now);
      cooldown.failed('t', 1);
      expect(cooldown.coolingDown('t', 1)).toBe(true);
      expect(cooldown.coolingDown('t', 2)).toBe(false);
      expect(cooldown.coolingDown('u', 1)).toBe(false);
      now = 100;
      expect(cooldown.coolingDown('t', 1)).toBe(false);
      cooldown.failed('t', 1);
      now = 250;
      expect(cooldown.coolingDown('t', 1)).toBe(true);
      cooldown.succeeded('t', 1);
      expect(cooldown.coolingDown('t', 1)).toBe(false);
    },
  );
});
