/**
 * Member names that occur twice in one object, which JSON.parse silently resolves to the last
 * value (`{"jti":"a","jti":"b"}` is `{"jti":"b"}`). `text` must already be valid JSON. Looks at
 * the top-level object (element 0), or at each object directly inside a top-level array (by its
 * index there). One pass over the text, no second parse.
 */
export function duplicateMembers(text: string): Array<{ element: number; name: string }> {
  const found: Array<{ element: number; name: string }> = [];
  // One frame per open container; an entry object also keeps the names it has seen.
  const stack: Array<{ object: boolean; names: Set<string> | null; expectName: boolean }> = [];
  let topIsArray = false;
  let element = -1;
  let awaitingElement = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') continue;
    if (awaitingElement && ch !== ']') {
      element++;
      awaitingElement = false;
    }
    const top = stack.at(-1);
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.object && top.expectName) {
        top.expectName = false;
        if (top.names) {
          const raw = text.slice(i + 1, j);
          const name = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
          if (top.names.has(name)) found.push({ element: topIsArray ? element : 0, name });
          top.names.add(name);
        }
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      if (stack.length === 0) topIsArray = ch === '[';
      const isEntry = ch === '{' && stack.length === (topIsArray ? 1 : 0);
      stack.push({ object: ch === '{', names: isEntry ? new Set() : null, expectName: ch === '{' });
      if (stack.length === 1 && topIsArray) awaitingElement = true;
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      if (top?.object) top.expectName = true;
      else if (stack.length === 1 && topIsArray) awaitingElement = true;
    }
  }
  return found;
}
