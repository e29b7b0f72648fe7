// The tools the benchmark's MCP server lists (the ext_proc scenarios' list responses), and the
// pins file that pins them on the files-pinned endpoint (docs/pinning.md).
import { stringify } from 'yaml';
import { definitionDigest } from '../../src/pins/definition.js';

/** The granted tools of the benchmark's key (tools:search, tools:read_*) among 50. */
export const VISIBLE = ['search', 'read_file', 'read_dir', 'read_log', 'read_config'];
export const TOOLS = [...VISIBLE, ...Array.from({ length: 45 }, (_, i) => `admin_tool_${i}`)].map((name) => ({
  name,
  description: `The ${name} tool of the benchmark's MCP server.`,
  inputSchema: { type: 'object', properties: { path: { type: 'string', description: 'A path' } }, required: ['path'] },
}));

/** pins.yaml: every one of TOOLS pinned on files-pinned, enforced. */
export function benchPins(): string {
  const tools = Object.fromEntries(TOOLS.map((t) => [t.name, { sha256: definitionDigest('tools', t), definition: t }]));
  return stringify({ version: 1, endpoints: { 'files-pinned': { mode: 'enforce', tools } } });
}
