import argon2 from 'argon2';

export type PasswordHasher = {
  hash: (password: string) => Promise<string>;
  verify: (hash: string, password: string) => Promise<boolean>;
  /**
   * Verifies against a hash of a random password made with the same parameters, so a login for an
   * unknown email costs what a wrong password costs (no account enumeration by timing).
   */
  verifyDummy: (password: string) => Promise<false>;
};

export type Argon2Params = { memoryKib: number; timeCost: number; parallelism: number };

/** argon2id; node-argon2 hashes on the libuv threadpool, so the event loop never blocks on it. */
export function createArgon2Hasher(params: Argon2Params): PasswordHasher {
  const options = {
    type: argon2.argon2id,
    memoryCost: params.memoryKib,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  };
  let dummy: Promise<string> | undefined;
  const dummyHash = () => (dummy ??= argon2.hash(`dummy-${Math.random()}-${Date.now()}`, options));
  return {
    hash: (password) => argon2.hash(password, options),
    verify: (hash, password) => argon2.verify(hash, password),
    verifyDummy: async (password) => {
      await argon2.verify(await dummyHash(), password);
      return false;
    },
  };
}
