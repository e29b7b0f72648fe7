import type { Principal } from '../auth/principal.js';
import type { HeaderToSet } from './outcome.js';

/** The identity headers the MCP server receives on an allowed request; always replace client copies. */
export function identityHeaders(p: Principal): HeaderToSet[] {
  const out: HeaderToSet[] = [{ name: 'x-mcp-auth-method', value: p.method, append: false }];
  if (p.method !== 'anonymous') out.push({ name: 'x-mcp-principal', value: p.id, append: false });
  if (p.userId !== undefined) out.push({ name: 'x-mcp-user-id', value: p.userId, append: false });
  if (p.keyId !== undefined) out.push({ name: 'x-mcp-key-id', value: p.keyId, append: false });
  return out;
}
