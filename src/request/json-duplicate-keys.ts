// JSON.parse silently keeps the last of two equal keys, so {"name":"search","name":"delete"}
// could show the policy one tool and the MCP server another. This scanner finds such
// duplicates in text that JSON.parse has already accepted.

/** Returns the first duplicated key (with its JSON path), or undefined. Input must be valid JSON. */
export function findDuplicateKey(text: string): string | undefined {
  // One key set per open object; arrays push null so depth stays aligned.
  const stack: (Set<string> | null)[] = [];
  const pathStack: string[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      i++;
      for (; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      if (expectKey) {
        const rawKey = text.slice(start, i + 1);
        const key = escaped ? (JSON.parse(rawKey) as string) : rawKey.slice(1, -1);
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return [...pathStack.slice(0, -1), key].filter((s) => s !== '').join('.');
        keys.add(key);
        pathStack[stack.length - 1] = key;
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      pathStack.push('');
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      pathStack.push('[]');
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      pathStack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}
