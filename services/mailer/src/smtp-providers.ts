/**
 * The SMTP providers of one mailer: the primary (SMTP_HOST, SMTP_PORT, ...) and the fallbacks of
 * SMTP_FALLBACK_URLS, in the order they are tried. Pure parsing: no I/O, no secrets in errors.
 */
export type SmtpProvider = {
  /** Names the provider in statuses, metrics and logs: never a credential. */
  label: string;
  host: string;
  port: number;
  /** Implicit TLS (smtps://, port 465 style). */
  secure: boolean;
  user: string | undefined;
  password: string | undefined;
  /** Never AUTH (nor send) without TLS: STARTTLS is mandatory on a plain connection. */
  requireTls: boolean;
};

export const PRIMARY_LABEL = 'primary';
const LABEL = /^[A-Za-z0-9_.-]{1,40}$/;

export type PrimarySettings = {
  SMTP_HOST: string;
  SMTP_PORT: number;
  SMTP_SECURE: boolean;
  SMTP_USER?: string | undefined;
  SMTP_PASSWORD?: string | undefined;
  SMTP_REQUIRE_TLS?: boolean | undefined;
};

/** The primary provider from the SMTP_* variables. TLS is required by default when credentials are set. */
export function primaryProvider(config: PrimarySettings): SmtpProvider {
  return {
    label: PRIMARY_LABEL,
    host: config.SMTP_HOST,
    port: config.SMTP_PORT,
    secure: config.SMTP_SECURE,
    user: config.SMTP_USER,
    password: config.SMTP_PASSWORD,
    requireTls: config.SMTP_REQUIRE_TLS ?? config.SMTP_USER !== undefined,
  };
}

/**
 * One fallback URL in nodemailer's syntax: `smtp://user:pass@host:port` or `smtps://...`, with an
 * optional `?name=label`. Returns a problem text (that never repeats the URL: it may hold a password).
 */
export function parseFallbackUrl(raw: string, index: number, requireTls: boolean | undefined): SmtpProvider | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `entry ${index + 1} is not a URL`;
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:')
    return `entry ${index + 1} must start with smtp:// or smtps://`;
  if (!url.hostname) return `entry ${index + 1} has no host`;
  const secure = url.protocol === 'smtps:';
  const port = url.port ? Number(url.port) : secure ? 465 : 587;
  const label = url.searchParams.get('name') ?? `fallback-${index + 1}`;
  if (!LABEL.test(label) || label === PRIMARY_LABEL || label === 'none') {
    return `entry ${index + 1}: name must be 1-40 letters, digits, . _ - (not "primary" or "none")`;
  }
  const user = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  if ((user === undefined) !== (password === undefined)) return `entry ${index + 1}: user and password go together`;
  return {
    label,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    secure,
    user,
    password,
    requireTls: requireTls ?? user !== undefined,
  };
}

/** Every fallback of a comma-separated SMTP_FALLBACK_URLS, or the problems found (labels must be unique). */
export function parseFallbackUrls(
  value: string | undefined,
  requireTls: boolean | undefined,
): { providers: SmtpProvider[]; problems: string[] } {
  const entries = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const providers: SmtpProvider[] = [];
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const parsed = parseFallbackUrl(entry, i, requireTls);
    if (typeof parsed === 'string') problems.push(parsed);
    else if (providers.some((p) => p.label === parsed.label))
      problems.push(`entry ${i + 1}: name "${parsed.label}" is used twice`);
    else providers.push(parsed);
  });
  return { providers, problems };
}

/** The providers in the order they are tried: the primary, then each fallback. */
export function smtpProviders(config: PrimarySettings & { SMTP_FALLBACK_URLS?: string | undefined }): SmtpProvider[] {
  const { providers, problems } = parseFallbackUrls(config.SMTP_FALLBACK_URLS, config.SMTP_REQUIRE_TLS);
  if (problems.length > 0) throw new Error(`SMTP_FALLBACK_URLS: ${problems.join('; ')}`);
  return [primaryProvider(config), ...providers];
}
