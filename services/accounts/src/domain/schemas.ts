import { z } from 'zod';
import { ValidationFailedError } from './errors';

/** Request bodies of the accounts API; every route validates with these, never with hand-written ifs. */

const email = z.string().trim().min(3).max(320).email('must be an email address');
const name = z.string().trim().max(200).nullable().optional();

export const registerBody = (commonPasswords: ReadonlySet<string>) =>
  z.object({
    email,
    password: z
      .string()
      .min(8, 'must be at least 8 characters')
      // argon2 accepts any length; the cap keeps one request from buying megabytes of hashing input.
      .max(256, 'must be at most 256 characters')
      .refine((p) => !commonPasswords.has(p.toLowerCase()), 'is too common'),
    first_name: name,
    last_name: name,
    referral_code: z.string().trim().min(1).max(64).nullable().optional(),
  });
export type RegisterBody = z.infer<ReturnType<typeof registerBody>>;

export const loginBody = z.object({
  email: z
    .string()
    .max(320)
    // Failures are counted per lower(email) in a column capped at 320 characters; lowercasing can
    // lengthen a string ('İ' becomes 'i' + U+0307), which would break that CHECK with a 500.
    .refine((v) => v.trim().toLowerCase().length <= 320, 'must be at most 320 characters'),
  password: z.string().max(256),
});
export type LoginBody = z.infer<typeof loginBody>;

export const refreshBody = z.object({ refresh_token: z.string().min(1).max(4096) });

export const confirmBody = z.object({ code: z.string().regex(/^\d{6}$/, 'must be 6 digits') });

export const anonymousResendBody = z.object({ email: z.string().max(320) });

/**
 * Paths of every string (value or key) in `input` that contains a NUL character. PostgreSQL text
 * cannot hold U+0000 (it fails with 22021, which would surface as a 500), and no legitimate email,
 * password, name or token contains one, so such a body is rejected before it reaches SQL.
 * The request schemas are flat: deeper values are never stored, and the depth cap keeps a 64 KiB
 * body of nested arrays from exhausting the stack (the fuzz test found that one).
 */
function pathsWithNul(input: unknown, path: string[] = [], found: string[] = []): string[] {
  if (found.length >= 20 || path.length > 4) return found;
  if (typeof input === 'string') {
    if (input.includes('\u0000')) found.push(path.join('.') || '(body)');
  } else if (Array.isArray(input)) {
    input.forEach((item, i) => pathsWithNul(item, [...path, String(i)], found));
  } else if (input !== null && typeof input === 'object') {
    for (const [key, value] of Object.entries(input)) {
      if (key.includes('\u0000')) found.push([...path, '(key)'].join('.'));
      pathsWithNul(value, [...path, key], found);
    }
  }
  return found;
}

/** Parses `input` with `schema` or throws 400 validation_failed listing each problem (never the value). */
export function validate<S extends z.ZodTypeAny>(schema: S, input: unknown): z.infer<S> {
  const nul = pathsWithNul(input);
  if (nul.length > 0)
    throw new ValidationFailedError(nul.map((path) => ({ path, message: 'must not contain NUL characters' })));
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  throw new ValidationFailedError(
    result.error.issues
      .slice(0, 20)
      .map((issue) => ({ path: issue.path.join('.') || '(body)', message: issue.message })),
  );
}
