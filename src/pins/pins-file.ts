// The pins file (`pins.file`, docs/pinning.md): per endpoint, a mode and the pinned
// definitions of its tools, prompts and resource templates. Each pin is a SHA-256 (of the
// RFC 8785 form of the definition's pinned members, src/pins/definition.ts) and, usually,
// the definition itself — what `mcp-authz pins diff` compares against and where a tool's
// annotations come from. A definition whose digest is not its pin, or whose name is not its
// key, is an error: the file is refused whole, never half used.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { definitionDigest, itemName, PIN_KINDS, type PinKind } from './definition.js';

export const PIN_MODES = ['enforce', 'trust-on-first-use', 'report'] as const;
export type PinMode = (typeof PIN_MODES)[number];

const Digest = z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 as 64 lowercase hex digits');
const PinSchema = z
  .object({
    sha256: Digest,
    /** The pinned members as listed: for diffs and (tools) annotations. */
    definition: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
const PinMap = z.record(z.string().min(1), PinSchema).default({});
const EndpointPinsSchema = z
  .object({
    mode: z.enum(PIN_MODES),
    tools: PinMap,
    prompts: PinMap,
    resourceTemplates: PinMap,
  })
  .strict();
export const PinsFileSchema = z
  .object({
    version: z.literal(1),
    endpoints: z.record(z.string().min(1), EndpointPinsSchema).default({}),
  })
  .strict();

export type PinsFileContent = z.infer<typeof PinsFileSchema>;

export interface Pin {
  readonly sha256: string;
  readonly definition?: Readonly<Record<string, unknown>>;
}

export interface EndpointPins {
  readonly mode: PinMode;
  readonly pins: Readonly<Record<PinKind, ReadonlyMap<string, Pin>>>;
}

/** The pins in force: endpoint name → its pins. */
export class PinSet {
  constructor(readonly endpoints: ReadonlyMap<string, EndpointPins>) {}

  get size(): number {
    let n = 0;
    for (const e of this.endpoints.values()) for (const k of PIN_KINDS) n += e.pins[k].size;
    return n;
  }

  static readonly EMPTY = new PinSet(new Map());
}

export class PinsFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.join('; ')}`);
  }
}

/** Reads a pins file's bytes. Throws PinsFileError naming every problem found. */
export function parsePinsFile(text: string, file: string): PinSet {
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new PinsFileError(file, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const parsed = PinsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PinsFileError(
      file,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`),
    );
  }
  const problems: string[] = [];
  const endpoints = new Map<string, EndpointPins>();
  for (const [name, e] of Object.entries(parsed.data.endpoints)) {
    const pins = {} as Record<PinKind, Map<string, Pin>>;
    for (const kind of PIN_KINDS) {
      const map = new Map<string, Pin>();
      for (const [key, p] of Object.entries(e[kind])) {
        const where = `endpoints.${name}.${kind}.${key}`;
        if (p.definition !== undefined) {
          const named = itemName(kind, p.definition);
          if (named !== key) {
            problems.push(`${where}: the definition names ${JSON.stringify(named)}, not ${JSON.stringify(key)}`);
            continue;
          }
          let digest: string;
          try {
            digest = definitionDigest(kind, p.definition);
          } catch (err) {
            problems.push(`${where}: the definition is not JSON: ${(err as Error).message}`);
            continue;
          }
          if (digest !== p.sha256) {
            problems.push(
              `${where}: sha256 is not the digest of the definition (${digest}): record the pin again (mcp-authz pins record)`,
            );
            continue;
          }
        }
        map.set(key, Object.freeze({ sha256: p.sha256, ...(p.definition ? { definition: p.definition } : {}) }));
      }
      pins[kind] = map;
    }
    endpoints.set(name, Object.freeze({ mode: e.mode, pins }));
  }
  if (problems.length > 0) throw new PinsFileError(file, problems);
  return new PinSet(endpoints);
}
