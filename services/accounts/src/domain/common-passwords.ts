import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A short list of the most common passwords (one per line, compared case-insensitively): cheap to
 * ship, and it stops the guesses every credential-stuffing list starts with.
 */
export function loadCommonPasswords(file = path.join(__dirname, 'common-passwords.txt')): ReadonlySet<string> {
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.trim().toLowerCase())
      .filter(Boolean),
  );
}
