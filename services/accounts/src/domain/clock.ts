/** The time source of every rule that depends on time (token expiry, cooldowns, code expiry). */
export type Clock = { now: () => Date };

export const systemClock: Clock = { now: () => new Date() };
