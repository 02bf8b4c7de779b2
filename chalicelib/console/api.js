// The console's only way out: the public /v1 API, with the key held in sessionStorage.
// Never a cookie, never localStorage: closing the tab forgets the key.

const KEY_STORAGE = "billing-console.api-key";
const KIND_STORAGE = "billing-console.key-kind";
export const KEY_REFUSED_EVENT = "billing-console:key-refused";

// The API lives next to the console: /console/ -> / (locally), /api/console/ -> /api/ (AWS).
const API_ROOT = new URL("..", window.location.href).href.replace(/\/$/, "");

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    // Set on a refusal that says "try again" (a busy key, a lost race, a rate limit).
    this.retryAfter = retryAfter;
    this.type = error.type || "internal";
    this.details = error.details || [];
    this.payment = error.payment || null;
  }

  // The message for one form field, from error.details[].field ("prices.month", "email", ...).
  fieldMessage(field) {
    const hit = this.details.find((d) => d.field === field || d.field.startsWith(field + "."));
    return hit ? hit.message : null;
  }

  // What the operator reads: for a 402, the decline reason the card issuer gave.
  describe() {
    if (this.status === 402 && this.payment && this.payment.failure) {
      const f = this.payment.failure;
      const code = f.decline_code || f.code;
      return `Payment declined: ${f.message || "the card was declined"}${code ? ` (${code})` : ""}`;
    }
    return this.message;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  get kind() {
    return sessionStorage.getItem(KIND_STORAGE);
  },
  save(key, kind) {
    sessionStorage.setItem(KEY_STORAGE, key);
    sessionStorage.setItem(KIND_STORAGE, kind);
  },
  clear() {
    sessionStorage.removeItem(KEY_STORAGE);
    sessionStorage.removeItem(KIND_STORAGE);
  },
};

function queryString(query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export async function api(method, path, { body, query, idempotencyKey, key } = {}) {
  const headers = { Authorization: `Bearer ${key || session.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(`${API_ROOT}${path}${queryString(query)}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (caught) {
    // The request may or may not have been done. Sent again, an action reuses its
    // Idempotency-Key (ui.js, useAction), so it is never done twice.
    throw new Error(`No answer from the API (${caught.message}); trying again is safe.`);
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (response.status === 401 && !key && session.key) {
    // The key this tab signed in with stopped working (revoked or rotated): forget it and go
    // back to the sign-in, rather than leave every page answering 401.
    session.clear();
    window.dispatchEvent(new CustomEvent(KEY_REFUSED_EVENT));
  }
  if (!response.ok) {
    throw new ApiError(response.status, payload, response.headers.get("Retry-After"));
  }
  return payload;
}

// Every page of a list, up to `maxPages` (lists are Query pages of at most 100). When more is
// left after that, the array's `truncated` is true, for the page to say so (never silently).
export async function listAll(path, query = {}, maxPages = 10) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const result = await api("GET", path, {
      query: { ...query, limit: 100, starting_after: cursor },
    });
    items.push(...result.data);
    if (!result.has_more) return items;
    cursor = result.next_cursor;
  }
  items.truncated = true;
  return items;
}

// Which kind of key this is: the platform key may list communities, a community key may not.
export async function identifyKey(key) {
  try {
    await api("GET", "/v1/communities", { query: { limit: 1 }, key });
    return "platform";
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return "community";
    throw error;
  }
}

export function newIdempotencyKey() {
  return `console-${crypto.randomUUID()}`;
}
