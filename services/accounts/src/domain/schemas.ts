import { z } from 'zod';
import { ValidationFailedError } from './errors';

/** Request bodies of the accounts API; every route validates with these, never with hand-written ifs. */

const email = z.string().trim().min(3).max(320).email('must be an email address');
const name = z.string().trim().max(200).nullable().optional();

export const registerBody = (commonPasswords: ReadonlySet<string>) =>
  z
    .object({
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

export const loginBody = z.object({ email: z.string().max(320), password: z.string().max(256) });
export type LoginBody = z.infer<typeof loginBody>;

export const refreshBody = z.object({ refresh_token: z.string().min(1).max(4096) });

export const confirmBody = z.object({ code: z.string().regex(/^\d{6}$/, 'must be 6 digits') });

export const anonymousResendBody = z.object({ email: z.string().max(320) });

/** Parses `input` with `schema` or throws 400 validation_failed listing each problem (never the value). */
export function validate<S extends z.ZodTypeAny>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  throw new ValidationFailedError(
    result.error.issues.slice(0, 20).map((issue) => ({ path: issue.path.join('.') || '(body)', message: issue.message })),
  );
}
