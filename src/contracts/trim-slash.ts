/** `s` without its trailing slashes: "/mcp/files/" → "/mcp/files", "https://x/" → "https://x". */
export function trimSlash(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 47) end--;
  return s.slice(0, end);
}
