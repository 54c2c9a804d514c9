import type { UserRow } from '../data-access/users-repository';

/** The `user_data` of the contract's responses. */
export type PublicUser = {
  id: string;
  email: string;
  first_name: string | null;
  last_name: string | null;
  email_confirmed: boolean;
  referral_code: string;
  referred_by: string | null;
};

export function toPublicUser(row: UserRow): PublicUser {
  return {
    id: row.id,
    email: row.email,
    first_name: row.first_name,
    last_name: row.last_name,
    email_confirmed: row.email_confirmed_at !== null,
    referral_code: row.referral_code,
    referred_by: row.referred_by,
  };
}
