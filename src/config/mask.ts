/**
 * Hides the password of a connection URL so it can appear in errors and logs.
 * Anything that is not a URL is returned unchanged apart from any `user:pass@` it contains.
 */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/gi, '$1***');
  }
}

/** Replaces every occurrence of a known URL inside free text (driver errors echo them). */
export function maskUrlsIn(text: string, urls: Array<string | undefined>): string {
  let out = text;
  for (const url of urls) {
    if (!url) continue;
    out = out.split(url).join(maskUrl(url));
    try {
      const u = new URL(url);
      for (const pw of [u.password && decodeURIComponent(u.password), u.searchParams.get('password')]) {
        if (pw) out = out.split(pw).join('***');
      }
    } catch {
      /* not a URL: nothing more to hide */
    }
  }
  return out;
}
