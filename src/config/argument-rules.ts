// The shipped policy's argument rules, `endpoints[].data.arguments` (docs/policies.md
// "Argument constraints"): validated here at load so a typo ("pathUnder", "maximun") stops
// the service with the field's path instead of silently constraining nothing. The values
// reach the policy exactly as written: no defaults are filled in (the Rego applies them).
import { z } from 'zod';

/** URL schemes an argument URL may be checked for: WHATWG's special schemes with a host. */
export const URL_SCHEMES = ['http', 'https', 'ws', 'wss', 'ftp'] as const;

// The largest integer every JSON reader holds exactly (a float64's 53-bit mantissa).
const SAFE = Number.MAX_SAFE_INTEGER;

const absolutePrefix = z
  .string()
  .startsWith('/', 'an absolute path starting with "/"')
  .refine((p) => p === '/' || !p.endsWith('/'), 'no trailing "/" (write "/docs", which also covers "/docs/…")')
  .refine(
    (p) => p === '/' || !/\/[. ]*(\/|$)/.test(p),
    'no empty, "." or ".." segments (nor segments of dots and spaces only)',
  )
  .refine((p) => !/[\0-\x1f\x7f\\%]/.test(p), 'no control characters, "\\" or "%"');

/** A host entry: a lower-case ASCII host name (IDN as punycode), "*.suffix", an IP literal as WHATWG writes it, or a CIDR. */
const hostEntry = z.string().refine(validHostEntry, {
  message:
    'a lower-case host name ("api.example.com", IDN as punycode), "*.example.com" (any subdomain), an IPv4 address ("192.0.2.1"), an IPv6 address in brackets as WHATWG URL writes it ("[2001:db8::1]"), or a CIDR ("10.0.0.0/8", "2001:db8::/32")',
});

/**
 * The SQL dialects a rule may name. PostgreSQL's is read by its own parser; the others have no
 * parser here, and only the portable subset is accepted for them (docs/policies.md "SQL read-only").
 */
export const SQL_DIALECTS = ['postgresql', 'mysql', 'mariadb', 'sqlserver', 'sqlite', 'oracle', 'other'] as const;

/**
 * `{dialect: D}`: one read-only query as the dialect's database reads it. `select-only`, the
 * earlier form, names no dialect: it accepts what `{dialect: other}` accepts.
 */
const sqlConstraint = z.union([z.literal('select-only'), z.object({ dialect: z.enum(SQL_DIALECTS) }).strict()], {
  error: 'select-only, or {dialect: postgresql | mysql | mariadb | sqlserver | sqlite | oracle | other}',
});

export type SqlConstraint = z.infer<typeof sqlConstraint>;

/** Whether the service reads this constraint's dialect with a parser of its own (else: the portable subset). */
export function sqlDialectHasParser(c: SqlConstraint): boolean {
  return typeof c === 'object' && c.dialect === 'postgresql';
}

const valueConstraint = {
  type: z.enum(['string', 'number', 'integer', 'boolean', 'object', 'array']).optional(),
  enum: z.array(z.unknown()).min(1).optional(),
  pattern: z.string().min(1).optional(),
  notPattern: z.string().min(1).optional(),
  maxLength: z.number().int().min(0).optional(),
  minimum: z.number().min(-SAFE).max(SAFE).optional(),
  maximum: z.number().min(-SAFE).max(SAFE).optional(),
  path: z
    .object({ under: z.array(absolutePrefix).min(1) })
    .strict()
    .optional(),
  url: z
    .object({
      hosts: z.array(hostEntry).min(1),
      schemes: z.array(z.enum(URL_SCHEMES)).min(1).optional(),
      ports: z.array(z.number().int().min(1).max(65535)).min(1).optional(),
    })
    .strict()
    .optional(),
  sql: sqlConstraint.optional(),
};

const bounds = (c: { minimum?: number; maximum?: number }) =>
  c.minimum === undefined || c.maximum === undefined || c.minimum <= c.maximum;
const BOUNDS = { message: 'minimum is above maximum: no value could pass' };

const ItemConstraint = z.object(valueConstraint).strict().refine(bounds, BOUNDS);

export const ArgumentConstraintSchema = z
  .object({
    presence: z.enum(['required', 'optional', 'forbidden']).optional(),
    ...valueConstraint,
    items: ItemConstraint.optional(),
  })
  .strict()
  .refine(bounds, BOUNDS)
  .refine((c) => c.presence !== 'forbidden' || Object.keys(c).length === 1, {
    message: 'a forbidden argument takes no other constraint (it must be absent)',
  });

export const ArgumentRuleSchema = z
  .object({
    /** Tool names or globs ("*" matches any characters), as in grants. */
    tools: z.array(z.string().min(1)).min(1).optional(),
    /** Prompt names or globs. */
    prompts: z.array(z.string().min(1)).min(1).optional(),
    arguments: z.record(z.string().min(1), ArgumentConstraintSchema).optional(),
    /** deny: an argument this rule does not list is refused. Default allow. */
    otherArguments: z.enum(['allow', 'deny']).optional(),
    /** Principals holding one of these grant strings exactly (a key's permission, a token's scope) are not bound by the rule. */
    exemptGrants: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .refine((r) => r.tools !== undefined || r.prompts !== undefined, {
    message: 'name the tools and/or prompts the rule applies to',
  });

export const ArgumentRulesSchema = z.array(ArgumentRuleSchema);

export type ArgumentConstraint = z.infer<typeof ArgumentConstraintSchema>;
export type ArgumentRule = z.infer<typeof ArgumentRuleSchema>;

const DOMAIN = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

function validHostEntry(h: string): boolean {
  const slash = h.indexOf('/');
  if (slash !== -1) {
    const ip = h.slice(0, slash);
    const bits = h.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
    if (ip.includes(':')) return Number(bits) <= 128 && whatwgHost(`[${ip}]`) === `[${ip}]`;
    return Number(bits) <= 32 && isIpv4(ip) && whatwgHost(ip) === ip;
  }
  if (h.startsWith('[')) return whatwgHost(h) === h;
  if (!DOMAIN.test(h)) return false;
  // A name WHATWG reads as an IPv4 address ("127.1", "0x7f.1") is written as the address.
  return whatwgHost(h.startsWith('*.') ? h.slice(2) : h) === (h.startsWith('*.') ? h.slice(2) : h);
}

function isIpv4(s: string): boolean {
  return /^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/.test(s) && s.split('.').every((o) => Number(o) <= 255);
}

function whatwgHost(host: string): string | undefined {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return undefined;
  }
}
