// tocsin.js: the browser client of tocsin, a dependency-free ES module.
//
//   import { subscribe, markRead } from "https://tocsin.example/client/tocsin.js";
//   const stop = subscribe({
//     onFeed: (feed) => render(feed.items),
//     onNotification: (n) => prepend(n),
//     onUnread: (count) => (badge.textContent = count),
//     onStatus: (status) => (dot.dataset.status = status),
//   });
//
// It reads the feed first, then follows the stream from the feed's newest id, so
// nothing falls between the two; EventSource resumes by Last-Event-ID on its own.
//
// Typed with JSDoc, checked strictly by TypeScript (tests/js); tocsin.d.ts beside it
// (served at /client/tocsin.d.ts) is generated from these comments for TypeScript
// applications: `npm --prefix tests/js run types` after changing a type here.

/**
 * A notification (contract §2).
 * @typedef {object} Notification
 * @property {string} id opaque, starts `ntf_`
 * @property {string} kind
 * @property {string} subject_id what the user clicks on
 * @property {string | null} actor_id who did the thing
 * @property {string} created_at RFC 3339 UTC
 * @property {string} text
 * @property {Record<string, unknown>} meta
 */

/**
 * A page of the feed, newest first (contract §6).
 * @typedef {object} Feed
 * @property {Notification[]} items
 * @property {string | null} next_before cursor of the next (older) page, null at the end
 * @property {string | null} last_id the newest id the user has
 * @property {number} unread how many are newer than the read marker
 * @property {string} [cursor] where a stream opened after this read resumes (never null)
 */

/**
 * The answer of `markRead`.
 * @typedef {object} ReadState
 * @property {string | null} up_to
 * @property {number} unread
 */

/**
 * Where the connection stands: `connecting` (first load), `open`, `reconnecting`
 * (the browser is coming back by itself), `evicted` (another tab took the slot; never
 * reconnects), `closed` (unsubscribed, or the server refused the credentials).
 * @typedef {"connecting" | "open" | "reconnecting" | "evicted" | "closed"} Status
 */

/**
 * A bearer token, or a function that returns a fresh one. Without it the browser's
 * `tocsin_token` cookie is used. The stream carries it as `?token=`, which tocsin
 * accepts only for tokens living at most 300 s: pass a function so every
 * reconnect gets a fresh one.
 * @typedef {string | (() => string | Promise<string>)} TokenSource
 */

/**
 * Where tocsin is and who speaks.
 * @typedef {object} Connection
 * @property {string} [baseUrl] tocsin's address; defaults to where this module was loaded from
 * @property {TokenSource} [token]
 */

/**
 * What `subscribe` tells its caller, each optional (a new kind of event adds one here).
 * @typedef {object} Callbacks
 * @property {(item: Notification) => void} [onNotification] a new notification, once per id
 * @property {(feed: Feed) => void} [onFeed] the feed's first page: at start and after a reset
 * @property {(reason: string, feed: Feed) => void} [onReset] the server could not resume
 *   (reason), so the feed was read again; `onFeed` follows with it
 * @property {(count: number) => void} [onUnread] the unread count changed
 * @property {(status: Status) => void} [onStatus] the connection status changed
 * @property {(error: Error) => void} [onError] a request failed (it is retried unless refused)
 */

/**
 * What `subscribe` takes: where tocsin is, how much of the feed to read first
 * (`limit`, default 50), and the callbacks.
 * @typedef {Connection & Callbacks & {limit?: number}} SubscribeOptions
 */

const MODULE_BASE = new URL("../", import.meta.url).href;
const SEEN_MAX = 5000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

/** An HTTP answer other than success; `status` is its code (0 for a network failure). */
export class TocsinError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.name = "TocsinError";
    this.status = status;
  }
}

/**
 * @param {string | undefined} baseUrl
 * @returns {string}
 */
function baseOf(baseUrl) {
  const base = new URL(baseUrl ?? MODULE_BASE, location.href).href;
  return base.endsWith("/") ? base : base + "/";
}

/**
 * @param {TokenSource | undefined} token
 * @returns {Promise<string | null>}
 */
async function tokenOf(token) {
  if (token === undefined) return null;
  return typeof token === "function" ? await token() : token;
}

/**
 * @param {Connection} connection
 * @param {string} path
 * @param {RequestInit} init
 * @returns {Promise<any>}
 */
async function request(connection, path, init) {
  const headers = new Headers(init.headers);
  const token = await tokenOf(connection.token);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(new URL(path, baseOf(connection.baseUrl)), {
      ...init,
      headers,
      credentials: "include",
    });
  } catch (err) {
    throw new TocsinError(0, `tocsin unreachable: ${err instanceof Error ? err.message : err}`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new TocsinError(response.status, body?.error ?? `HTTP ${response.status}`);
  }
  return body;
}

/**
 * A page of the signed-in user's feed, newest first: items strictly older than `before`.
 * @param {Connection & {before?: string | null, limit?: number}} [options]
 * @returns {Promise<Feed>}
 */
export async function fetchFeed(options = {}) {
  const query = new URLSearchParams();
  if (options.limit !== undefined) query.set("limit", String(options.limit));
  if (options.before) query.set("before", options.before);
  const text = query.toString();
  return request(options, text ? `notifications?${text}` : "notifications", { method: "GET" });
}

/** @type {Set<(state: ReadState, base: string) => void>} */
const readListeners = new Set();
/** @type {BroadcastChannel | null} */
const tabs = typeof BroadcastChannel === "function" ? new BroadcastChannel("tocsin") : null;
tabs?.addEventListener("message", (event) => {
  const { base, state } = event.data ?? {};
  if (typeof base === "string" && state) readListeners.forEach((listener) => listener(state, base));
});

/**
 * Mark everything up to and including `id` read; every subscription (in every tab)
 * of this tocsin hears the new unread count.
 * @param {string} id
 * @param {Connection} [options]
 * @returns {Promise<ReadState>}
 */
export async function markRead(id, options = {}) {
  /** @type {ReadState} */
  const state = await request(options, "notifications/read", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ up_to: id }),
  });
  const base = baseOf(options.baseUrl);
  readListeners.forEach((listener) => listener(state, base));
  tabs?.postMessage({ base, state });
  return state;
}

/** Ids already delivered, the oldest forgotten first. */
class RecentIds {
  constructor() {
    /** @type {Set<string>} */
    this.ids = new Set();
  }

  /**
   * Remember `id`; false if it was already there.
   * @param {string} id
   */
  add(id) {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > SEEN_MAX) {
      // Not empty, so its first value is there.
      this.ids.delete(/** @type {string} */ (this.ids.values().next().value));
    }
    return true;
  }
}

/**
 * Follow the signed-in user's notifications live: each arrives once, in order, across
 * reconnects and server restarts.
 * @param {SubscribeOptions} [options]
 * @returns {() => void} stops following
 */
export function subscribe(options = {}) {
  const base = baseOf(options.baseUrl);
  /** @type {Connection} */
  const connection = { baseUrl: base, token: options.token };
  const seen = new RecentIds();
  /** @type {EventSource | null} */
  let source = null;
  /** @type {string | null} */
  let cursor = null;
  /** @type {Status | null} */
  let status = null;
  let unread = 0;
  let stopped = false;
  let attempts = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;

  /** @param {Status} next */
  const setStatus = (next) => {
    if (next === status) return;
    status = next;
    options.onStatus?.(next);
  };
  /** @param {number} count */
  const setUnread = (count) => {
    unread = Math.max(0, count);
    options.onUnread?.(unread);
  };
  /** @param {unknown} err */
  const report = (err) => options.onError?.(err instanceof Error ? err : new Error(String(err)));
  /** @param {unknown} err */
  const refused = (err) =>
    err instanceof TocsinError &&
    (err.status === 401 || err.status === 403) &&
    typeof options.token !== "function";

  /** @param {() => void} again */
  const retryLater = (again) => {
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempts);
    attempts += 1;
    timer = setTimeout(again, delay * (0.5 + Math.random() / 2));
  };

  /** @param {Notification} item */
  const deliver = (item) => {
    if (!seen.add(item.id)) return;
    setUnread(unread + 1);
    options.onNotification?.(item);
  };

  /** @param {string | null} reason */
  async function load(reason) {
    setStatus(reason === null && cursor === null ? "connecting" : "reconnecting");
    try {
      const feed = await fetchFeed({ ...connection, limit: options.limit });
      if (stopped) return;
      feed.items.forEach((item) => seen.add(item.id));
      cursor = feed.cursor ?? feed.last_id;
      setUnread(feed.unread);
      if (reason !== null) options.onReset?.(reason, feed);
      options.onFeed?.(feed);
      await open();
    } catch (err) {
      if (stopped) return;
      report(err);
      if (refused(err)) setStatus("closed");
      else retryLater(() => load(reason));
    }
  }

  // A stream opened without a cursor starts live, so whatever was stored before it
  // (between the feed read and now, or while it was down) is read from the feed instead.
  async function catchUp() {
    try {
      const feed = await fetchFeed({ ...connection, limit: options.limit });
      if (stopped) return;
      [...feed.items].reverse().forEach(deliver);
      cursor ??= feed.cursor ?? feed.last_id;
    } catch (err) {
      report(err);
    }
  }

  async function open() {
    const url = new URL("notifications/stream", base);
    if (cursor) url.searchParams.set("last_event_id", cursor);
    const token = await tokenOf(options.token);
    if (token) url.searchParams.set("token", token);
    if (stopped) return;
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    const current = () => source === es && !stopped;
    // EventSource resumes by the last id it received itself, else by the URL's cursor.
    let resumable = cursor !== null;

    es.onopen = () => {
      if (!current()) return;
      attempts = 0;
      setStatus("open");
      if (!resumable) void catchUp();
    };
    es.onerror = () => {
      if (!current()) return;
      if (es.readyState !== EventSource.CLOSED) {
        setStatus("reconnecting");
        return;
      }
      // The browser gave up (an error status): find out why before trying again.
      source = null;
      setStatus("reconnecting");
      void recover();
    };
    es.addEventListener("notification", (event) => {
      if (!current()) return;
      const message = /** @type {MessageEvent<string>} */ (event);
      let item;
      try {
        item = /** @type {Notification} */ (JSON.parse(message.data));
      } catch {
        return;
      }
      cursor = message.lastEventId || item.id;
      resumable = true;
      deliver(item);
    });
    es.addEventListener("reset", (event) => {
      if (!current()) return;
      es.close();
      source = null;
      void load(reasonOf(/** @type {MessageEvent<string>} */ (event), "reset"));
    });
    es.addEventListener("evicted", () => {
      if (!current()) return;
      // The user opened too many streams and this, the oldest, had to go: stay down.
      es.close();
      source = null;
      setStatus("evicted");
    });
  }

  async function recover() {
    try {
      await fetchFeed({ ...connection, limit: 1 });
      if (!stopped) await open();
    } catch (err) {
      if (stopped) return;
      report(err);
      if (refused(err)) setStatus("closed");
      else retryLater(() => void recover());
    }
  }

  /**
   * @param {ReadState} state
   * @param {string} from
   */
  const onRead = (state, from) => {
    if (from === base && !stopped) setUnread(state.unread);
  };
  readListeners.add(onRead);
  void load(null);

  return () => {
    stopped = true;
    clearTimeout(timer);
    readListeners.delete(onRead);
    source?.close();
    source = null;
    setStatus("closed");
  };
}

/**
 * @param {MessageEvent<string>} event
 * @param {string} fallback
 * @returns {string}
 */
function reasonOf(event, fallback) {
  try {
    const reason = JSON.parse(event.data)?.reason;
    return typeof reason === "string" ? reason : fallback;
  } catch {
    return fallback;
  }
}
