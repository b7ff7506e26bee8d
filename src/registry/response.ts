import type { HttpResponse } from './http.ts';

/** One header's value (the first, when repeated). */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and discards a response body that is not needed, so its connection is reused. */
export async function drain(res: HttpResponse): Promise<void> {
  await res.body.dump().catch(() => {});
}
