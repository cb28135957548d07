// tocsin.js: the browser client of tocsin, a dependency-free ES module.
//
//   import { subscribe, markRead } from "https://tocsin.example/client/tocsin.js";
//   const bell = subscribe({
//     onItems: (items) => render(items),          // the list, after every batch of changes
//     onUnseen: (count) => (badge.textContent = count),
//     onStatus: (status) => (dot.dataset.status = status),
//   });
//   bell.markSeen();                               // the user opened the bell
//   markRead(item.id);                             // the user clicked one
//
// It reads the feed first, then follows the stream from the feed's newest id, so
// nothing falls between the two; EventSource resumes by Last-Event-ID on its own.
// It keeps the list the page shows: state frames (a change on any device) update it
// and the counts, retractions and expiry take items out, and a notification whose key
// the list already holds takes that item's place in the same step.
//
// Typed with JSDoc, checked strictly by TypeScript (tests/js); tocsin.d.ts beside it
// (served at /client/tocsin.d.ts) is generated from these comments for TypeScript
// applications: `npm --prefix tests/js run types` after changing a type here.

/**
 * A notification (contract §2, §10) as the client hands it out.
 * @typedef {object} Notification
 * @property {string} id opaque, starts `ntf_`
 * @property {string} kind
 * @property {string} subject_id what the user clicks on
 * @property {string | null} actor_id who did the thing
 * @property {string} created_at RFC 3339 UTC
 * @property {string} text
 * @property {Record<string, unknown>} meta
 * @property {string | null} [key] the producer's name for it: a newer one with the same key replaces it
 * @property {string | null} [expires_at] RFC 3339 UTC; the client drops it from its list then
 * @property {ItemState} state the user's state of it (a live one starts all false)
 */

/**
 * One notification's state for the user (contract §9).
 * @typedef {object} ItemState
 * @property {boolean} read
 * @property {boolean} seen
 * @property {boolean} archived
 */

/**
 * The user's counts: `unread` (not read, not archived, not muted) and `unseen` (also
 * not seen: what the bell's badge shows).
 * @typedef {object} Counts
 * @property {number} unread
 * @property {number} unseen
 */

/**
 * What `markRead` answered before there was `Counts` (kept for applications using it).
 * @deprecated use `Counts`
 * @typedef {Counts} ReadState
 */

/**
 * What a state change does.
 * @typedef {"read" | "unread" | "seen" | "archive" | "unarchive"} Action
 */

/**
 * Which notifications a state change applies to: exactly one of these.
 * @typedef {{ids: string[]} | {up_to: string} | {kind: string} | {subject_id: string} | {all: true}} Selector
 */

/**
 * A state change as the server reports it: the action and its one selector.
 * @typedef {object} StateChange
 * @property {Action} action
 * @property {string[]} [ids]
 * @property {string} [up_to]
 * @property {string} [kind]
 * @property {string} [subject_id]
 * @property {boolean} [all]
 */

/**
 * A `state` frame: the counts after a change made anywhere (`change`), or the current
 * counts (no `change`: right after the stream opens, or after the preferences changed).
 * @typedef {Counts & {change?: StateChange}} StateFrame
 */

/**
 * Which notifications a list holds: `status` (default: everything not archived),
 * `kind` and `subject_id` (exact match).
 * @typedef {"all" | "unread" | "unseen" | "read" | "archived"} FeedStatus
 */

/**
 * @typedef {object} View
 * @property {FeedStatus} [status]
 * @property {string} [kind]
 * @property {string} [subject_id]
 */

/**
 * A page of the feed, newest first (contract §6, §9).
 * @typedef {object} Feed
 * @property {Notification[]} items
 * @property {string | null} next_before cursor of the next (older) page, null at the end
 * @property {string | null} last_id the newest id the user has
 * @property {number} unread
 * @property {number} unseen
 * @property {string} [cursor] where a stream opened after this read resumes (never null)
 */

/**
 * Notifications collapsed by `(kind, subject_id)` (contract §10).
 * @typedef {object} Group
 * @property {string} kind
 * @property {string} subject_id
 * @property {number} count how many notifications it holds
 * @property {number} unread how many of them are unread
 * @property {string[]} actors up to 3 distinct actor ids, newest first
 * @property {Notification} latest its newest notification
 */

/**
 * A page of groups, newest group first.
 * @typedef {object} Groups
 * @property {Group[]} groups
 * @property {string | null} next_before cursor of the next (older) page, null at the end
 */

/**
 * The user's preferences: kinds (or `prefix.*`) that are stored but not shown or counted.
 * @typedef {object} Preferences
 * @property {string[]} muted_kinds
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
 * What a feed read asks for: a view, items strictly older than `before`, `limit` of them.
 * @typedef {Connection & View & {before?: string | null, limit?: number}} FeedQuery
 */

/**
 * What `subscribe` tells its caller, each optional (a new kind of event adds one here).
 * Changes that arrive together are applied together: `onItems`, `onUnread` and
 * `onUnseen` are called once for them, so a replaced item never shows beside its
 * replacement and never leaves a gap.
 * @typedef {object} Callbacks
 * @property {(items: Notification[]) => void} [onItems] the list (newest first) after a change
 * @property {(item: Notification) => void} [onNotification] a new notification, once per id
 * @property {(feed: Feed) => void} [onFeed] the feed's first page: at start and after a reset
 * @property {(reason: string, feed: Feed) => void} [onReset] the server could not resume
 *   (reason), so the feed was read again; `onFeed` follows with it
 * @property {(count: number) => void} [onUnread] the unread count changed
 * @property {(count: number) => void} [onUnseen] the unseen count (the badge) changed
 * @property {(frame: StateFrame) => void} [onState] a state frame arrived (a change anywhere)
 * @property {(ids: string[]) => void} [onRetracted] the producer retracted these notifications
 * @property {(ids: string[]) => void} [onExpired] these notifications' `expires_at` passed
 * @property {(status: Status) => void} [onStatus] the connection status changed
 * @property {(error: Error) => void} [onError] a request failed (it is retried unless refused)
 */

/**
 * What `subscribe` takes: where tocsin is, which view to keep (default: everything not
 * archived), how many items a page holds (`limit`, default the server's), the callbacks.
 * @typedef {Connection & View & Callbacks & {limit?: number}} SubscribeOptions
 */

/**
 * What `subscribe` returns: call it to stop following; its methods reach the list.
 * @typedef {(() => void) & SubscriptionControls} Subscription
 */

/**
 * @typedef {object} SubscriptionControls
 * @property {() => Notification[]} items the list now, newest first
 * @property {() => Counts} counts the counts now
 * @property {() => boolean} hasOlder whether `loadOlder` would find more
 * @property {() => Promise<void>} loadOlder append the next older page to the list
 * @property {(view: View) => Promise<void>} setView show another view (the stream stays open)
 * @property {() => Promise<Counts>} markSeen mark seen everything up to the newest listed item
 */

const MODULE_BASE = new URL("../", import.meta.url).href;
const SEEN_MAX = 5000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
// A retraction without an id names what a keyed notification replaced; the replacement
// follows in the same write. If it never comes (its kind is muted), remove it anyway.
const REPLACEMENT_WAIT_MS = 1000;
// setTimeout's longest delay (2^31 - 1 ms, ~24.8 days); a later expiry is re-armed.
const TIMER_MAX_MS = 2147483647;
/** @type {ReadonlySet<string>} */
const ACTIONS = new Set(["read", "unread", "seen", "archive", "unarchive"]);

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
 * @param {string} method
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>}
 */
async function request(connection, path, method, body) {
  const headers = new Headers();
  const token = await tokenOf(connection.token);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (body !== undefined) headers.set("Content-Type", "application/json");
  let response;
  try {
    response = await fetch(new URL(path, baseOf(connection.baseUrl)), {
      method,
      headers,
      credentials: "include",
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw new TocsinError(0, `tocsin unreachable: ${err instanceof Error ? err.message : err}`);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new TocsinError(response.status, answer?.error ?? `HTTP ${response.status}`);
  }
  return answer;
}

/**
 * `path?query` with the given parameters that are set.
 * @param {string} path
 * @param {Record<string, string | number | null | undefined>} params
 */
function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * A page of the signed-in user's feed, newest first: items strictly older than `before`,
 * of the view asked for (default: everything not archived).
 * @param {FeedQuery} [options]
 * @returns {Promise<Feed>}
 */
export async function fetchFeed(options = {}) {
  const { limit, before, status, kind, subject_id } = options;
  return request(
    options,
    withQuery("notifications", { limit, before, status, kind, subject_id }),
    "GET",
  );
}

/**
 * A page of the feed collapsed by `(kind, subject_id)`, newest group first.
 * @param {Connection & {before?: string | null, limit?: number}} [options]
 * @returns {Promise<Groups>}
 */
export async function fetchGroups(options = {}) {
  const { limit, before } = options;
  return request(options, withQuery("notifications/groups", { limit, before }), "GET");
}

/**
 * The signed-in user's preferences.
 * @param {Connection} [options]
 * @returns {Promise<Preferences>}
 */
export async function getPreferences(options = {}) {
  return request(options, "preferences", "GET");
}

/**
 * Replace the signed-in user's preferences; every list of this tocsin is read again
 * (muted kinds leave it, unmuted ones come back).
 * @param {Preferences} preferences
 * @param {Connection} [options]
 * @returns {Promise<Preferences>}
 */
export async function setPreferences(preferences, options = {}) {
  /** @type {Preferences} */
  const answer = await request(options, "preferences", "PUT", preferences);
  const base = baseOf(options.baseUrl);
  subscriptions.forEach((subscription) => subscription.base === base && subscription.refresh());
  return answer;
}

/**
 * A subscription of this tab, as state changes made here reach it.
 * @typedef {object} Listener
 * @property {string} base
 * @property {(change: StateChange, counts: Counts, since: number | null) => void} changed
 *   apply a change answered here (`since`: the state frame tick when it was asked) or in
 *   another tab (null)
 * @property {() => void} refresh read the list again
 */

/** @type {Set<Listener>} */
const subscriptions = new Set();
// Counts every state frame any subscription of this tab received: a change's answer that
// arrives after a frame is older than that frame, so the frame's counts stand.
let frameTick = 0;
/** @type {BroadcastChannel | null} */
const tabs = typeof BroadcastChannel === "function" ? new BroadcastChannel("tocsin") : null;
tabs?.addEventListener("message", (event) => {
  const { base, change, counts } = event.data ?? {};
  if (typeof base !== "string" || !change || !counts) return;
  subscriptions.forEach((subscription) => {
    if (subscription.base === base) subscription.changed(change, counts, null);
  });
});

/**
 * Change the state of the selected notifications (contract §9). Every subscription of
 * this tocsin in this tab applies it at once; the server tells every other tab and
 * device with a state frame (and other tabs of this browser hear it here too).
 * @param {Action} action
 * @param {Selector} selector
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export async function updateState(action, selector, options = {}) {
  const since = frameTick;
  /** @type {StateChange} */
  const change = { action, ...selector };
  /** @type {Counts} */
  const answer = await request(options, "notifications/state", "POST", change);
  const counts = { unread: answer.unread, unseen: answer.unseen };
  const base = baseOf(options.baseUrl);
  subscriptions.forEach((subscription) => {
    if (subscription.base === base) subscription.changed(change, counts, since);
  });
  tabs?.postMessage({ base, change, counts });
  return counts;
}

/**
 * @param {string | string[]} ids
 * @returns {{ids: string[]}}
 */
const idsOf = (ids) => ({ ids: Array.isArray(ids) ? ids : [ids] });

/**
 * Mark these notifications (one id or several) read.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markRead(id, options) {
  return updateState("read", idsOf(id), options);
}

/**
 * Mark these notifications unread again, however they became read.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markUnread(id, options) {
  return updateState("unread", idsOf(id), options);
}

/**
 * Mark everything up to and including `id` read.
 * @param {string} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markReadUpTo(id, options) {
  return updateState("read", { up_to: id }, options);
}

/**
 * Mark seen (what opening the bell does) everything up to and including `upTo`, or
 * everything the user has when it is null.
 * @param {string | null} [upTo]
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markSeen(upTo, options) {
  return updateState("seen", upTo ? { up_to: upTo } : { all: true }, options);
}

/**
 * Archive these notifications: they leave the default list and the counts.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function archive(id, options) {
  return updateState("archive", idsOf(id), options);
}

/**
 * Bring archived notifications back.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function unarchive(id, options) {
  return updateState("unarchive", idsOf(id), options);
}

/** Ids remembered up to a bound, the oldest forgotten first. */
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

  /** @param {string} id */
  has(id) {
    return this.ids.has(id);
  }
}

/**
 * Ids of one stream incarnation sort as (length, string): negative when `a` is older.
 * @param {string} a
 * @param {string} b
 */
function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The item with a `state` (a live notification has none: it is new).
 * @param {Notification} item
 * @returns {Notification}
 */
function withState(item) {
  return item.state ? item : { ...item, state: { read: false, seen: false, archived: false } };
}

/**
 * @param {StateChange} change
 * @param {Notification} item
 */
function selects(change, item) {
  if (change.ids) return change.ids.includes(item.id);
  if (change.up_to) return compareIds(item.id, change.up_to) <= 0;
  if (change.kind) return item.kind === change.kind;
  if (change.subject_id) return item.subject_id === change.subject_id;
  return change.all === true;
}

/**
 * @param {ItemState} state
 * @param {Action} action
 * @returns {ItemState}
 */
function acted(state, action) {
  switch (action) {
    case "read":
      return { ...state, read: true, seen: true };
    case "unread":
      return { ...state, read: false };
    case "seen":
      return { ...state, seen: true };
    case "archive":
      return { ...state, archived: true };
    case "unarchive":
      return { ...state, archived: false };
  }
}

/**
 * Whether `item` belongs in `view` (muting is the server's to apply).
 * @param {Notification} item
 * @param {View} view
 */
function inView(item, view) {
  if (view.kind && item.kind !== view.kind) return false;
  if (view.subject_id && item.subject_id !== view.subject_id) return false;
  const { read, seen, archived } = item.state;
  switch (view.status) {
    case "all":
      return true;
    case "unread":
      return !read && !archived;
    case "unseen":
      return !seen && !read && !archived;
    case "read":
      return read && !archived;
    case "archived":
      return archived;
    default:
      return !archived;
  }
}

/**
 * Whether `action` can bring into `view` items it does not hold (so it is read again).
 * @param {Action} action
 * @param {View} view
 */
function mayAdd(action, view) {
  switch (view.status) {
    case "all":
      return false;
    case "unread":
    case "unseen":
      return action === "unread" || action === "unarchive";
    case "read":
      return action === "read" || action === "unarchive";
    case "archived":
      return action === "archive";
    default:
      return action === "unarchive";
  }
}

/**
 * Whether `item` has expired by `now` (ms since the epoch).
 * @param {Notification} item
 * @param {number} now
 */
function expired(item, now) {
  const at = expiryOf(item);
  return at !== null && at <= now;
}

/**
 * When `item` expires (ms since the epoch), or null.
 * @param {Notification} item
 */
function expiryOf(item) {
  if (!item.expires_at) return null;
  const at = Date.parse(item.expires_at);
  return Number.isNaN(at) ? null : at;
}

/**
 * The list one subscription shows, and the counts beside it: bookkeeping only (no I/O,
 * no callbacks). Every change calls `changed`, which the subscription coalesces.
 */
class FeedList {
  /**
   * @param {View} view
   * @param {() => void} changed
   */
  constructor(view, changed) {
    this.view = view;
    this.changed = changed;
    /** @type {Notification[]} newest first */
    this.items = [];
    /** @type {string | null} cursor of the next older page */
    this.nextBefore = null;
    /** @type {Counts} */
    this.counts = { unread: 0, unseen: 0 };
    // The newest id the counts already include: a notification delivered at or below it
    // (replayed after a read of the counts) is not counted again.
    /** @type {string | null} */
    this.counted = null;
    // Where the stream stands: a read's item above it is the stream's to deliver.
    /** @type {string | null} */
    this.cursor = null;
    this.delivered = new RecentIds();
    // Retracted, replaced or expired: never shown again, whatever a later read says.
    this.gone = new RecentIds();
  }

  /** @param {Counts} next */
  setCounts(next) {
    this.counts = { unread: Math.max(0, next.unread), unseen: Math.max(0, next.unseen) };
    this.changed();
  }

  /** @param {string | null} id */
  countedUpTo(id) {
    if (id !== null && (this.counted === null || compareIds(id, this.counted) > 0)) {
      this.counted = id;
    }
  }

  /**
   * The counts of a feed read, plus what the stream delivered after the read's newest id
   * while it was in flight (`arrived`).
   * @param {Feed} feed
   * @param {string[]} arrived
   */
  takeCounts(feed, arrived) {
    const last = feed.last_id;
    const newer = arrived.filter((id) => last === null || compareIds(id, last) > 0).length;
    this.setCounts({ unread: feed.unread + newer, unseen: feed.unseen + newer });
    this.counted = null;
    this.countedUpTo(last);
    arrived.forEach((id) => this.countedUpTo(id));
  }

  /**
   * Insert `item` where it belongs (newest first), unless it is there already.
   * @param {Notification} item
   */
  insert(item) {
    if (this.items.some((other) => other.id === item.id)) return;
    const at = this.items.findIndex((other) => compareIds(other.id, item.id) < 0);
    this.items.splice(at < 0 ? this.items.length : at, 0, item);
    this.delivered.add(item.id);
    this.changed();
  }

  /**
   * Whether a read's item may be listed: not gone, not expired, and already passed by
   * the stream (a newer one comes by the stream, with onNotification).
   * @param {Notification} item
   * @param {number} now
   */
  listable(item, now) {
    return (
      !this.gone.has(item.id) &&
      !expired(item, now) &&
      this.cursor !== null &&
      compareIds(item.id, this.cursor) <= 0
    );
  }

  /**
   * The list becomes a fresh first page (at start, after a reset, for another view).
   * @param {Feed} feed
   * @param {number} now
   */
  replace(feed, now) {
    this.items = [];
    feed.items.forEach((item) => this.listable(item, now) && this.insert(item));
    this.nextBefore = feed.next_before;
    this.changed();
  }

  /**
   * Fold a fresh first page into the list: states as the server has them, items that
   * left the view out, items that came back (unarchived elsewhere) in. What arrived
   * after the read, and older pages, it does not speak for.
   * @param {Feed} feed
   * @param {number} now
   */
  merge(feed, now) {
    const fresh = new Map(feed.items.map((item) => [item.id, item]));
    const oldest = feed.items.at(-1)?.id ?? null;
    const last = feed.last_id;
    /** @param {string} id */
    const covers = (id) =>
      last !== null &&
      compareIds(id, last) <= 0 &&
      (feed.next_before === null || (oldest !== null && compareIds(id, oldest) >= 0));
    const olderLoaded =
      oldest !== null && this.items.some((item) => compareIds(item.id, oldest) < 0);
    this.items = this.items
      .filter((item) => fresh.has(item.id) || !covers(item.id))
      .map((item) => fresh.get(item.id) ?? item);
    feed.items.forEach((item) => this.listable(item, now) && this.insert(item));
    if (!olderLoaded) this.nextBefore = feed.next_before;
    this.changed();
  }

  /**
   * Append an older page.
   * @param {Feed} feed
   * @param {number} now
   */
  append(feed, now) {
    feed.items.forEach((item) => {
      if (!this.gone.has(item.id) && !expired(item, now)) this.insert(item);
    });
    this.nextBefore = feed.next_before;
    this.changed();
  }

  /**
   * Take `ids` out for good (retracted, replaced, expired), and out of the counts where
   * they were counted; the ids the list did not hold (the counts may include them).
   * @param {string[]} ids
   * @returns {string[]}
   */
  remove(ids) {
    const wanted = new Set(ids);
    const missing = ids.filter(
      (id) => !this.gone.has(id) && !this.items.some((item) => item.id === id),
    );
    let { unread, unseen } = this.counts;
    this.items = this.items.filter((item) => {
      if (!wanted.has(item.id)) return true;
      const { read, seen, archived } = item.state;
      if (!read && !archived) unread -= 1;
      if (!read && !seen && !archived) unseen -= 1;
      return false;
    });
    ids.forEach((id) => {
      this.gone.add(id);
      this.delivered.add(id);
    });
    this.setCounts({ unread, unseen });
    return missing;
  }

  /**
   * A notification from the stream (or a catch-up read), with the ids it replaces (named
   * by a retraction without an id just before it); those and any listed item with its key
   * leave in the same step as it arrives, so the list never holds both and never
   * neither. The item as delivered (null if it was delivered before or has expired), and
   * the replaced ids the list did not hold.
   * @param {Notification} item
   * @param {string[]} replaces
   * @param {number} now
   * @returns {{item: Notification | null, missing: string[]}}
   */
  deliver(item, replaces, now) {
    if (!this.delivered.add(item.id)) return { item: null, missing: [] };
    const sameKey = item.key
      ? this.items.filter((other) => other.key === item.key && other.id !== item.id)
      : [];
    const out = [...replaces, ...sameKey.map((other) => other.id)];
    const missing = out.length > 0 ? this.remove(out) : [];
    if (expired(item, now)) {
      this.gone.add(item.id);
      return { item: null, missing };
    }
    const fresh = withState(item);
    if (this.counted === null || compareIds(fresh.id, this.counted) > 0) {
      this.counted = fresh.id;
      const { unread, unseen } = this.counts;
      this.setCounts({ unread: unread + 1, unseen: unseen + 1 });
    }
    if (inView(fresh, this.view)) this.insert(fresh);
    return { item: fresh, missing };
  }

  /**
   * Apply a state change to the listed items (the counts come with it, from the server);
   * whether items it does not hold may now belong in the view (so it is read again).
   * @param {StateChange} change
   * @param {Counts} counts
   */
  apply(change, counts) {
    this.setCounts(counts);
    this.countedUpTo(this.cursor);
    this.items = this.items
      .map((item) =>
        selects(change, item) ? { ...item, state: acted(item.state, change.action) } : item,
      )
      .filter((item) => inView(item, this.view));
    return mayAdd(change.action, this.view);
  }

  /**
   * Take out what has expired by `now`; its ids.
   * @param {number} now
   */
  expire(now) {
    const ids = this.items.filter((item) => expired(item, now)).map((item) => item.id);
    if (ids.length > 0) this.remove(ids);
    return ids;
  }

  /** When the next listed item expires (ms since the epoch), or null. */
  nextExpiry() {
    let next = Infinity;
    for (const item of this.items) next = Math.min(next, expiryOf(item) ?? Infinity);
    return next === Infinity ? null : next;
  }
}

/**
 * Follow the signed-in user's notifications live: each arrives once, in order, across
 * reconnects and server restarts, and the list and counts stay in step with every
 * device of the user.
 * @param {SubscribeOptions} [options]
 * @returns {Subscription}
 */
export function subscribe(options = {}) {
  const base = baseOf(options.baseUrl);
  /** @type {Connection} */
  const connection = { baseUrl: base, token: options.token };
  const list = new FeedList(
    { status: options.status, kind: options.kind, subject_id: options.subject_id },
    () => changed(),
  );
  /** @type {Counts | null} what the callbacks were last told */
  let told = null;
  // The frame tick of this subscription's last state frame, and how many it had.
  let lastFrame = 0;
  let frames = 0;
  /** @type {Set<string[]>} ids delivered while a feed read is in flight, a list per read */
  const arrivals = new Set();
  /** @type {EventSource | null} */
  let source = null;
  /** @type {Status | null} */
  let status = null;
  let stopped = false;
  let attempts = 0;
  let dirty = false;
  let refreshing = false;
  let refreshAgain = false;
  // Bumped when the list is read afresh: a read begun before belongs to another list.
  let generation = 0;
  /** @type {string[]} named by a retraction without an id: the next notification replaces them */
  let replaced = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let replacedTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let expiryTimer;

  /** @param {Status} next */
  const setStatus = (next) => {
    if (next === status) return;
    status = next;
    options.onStatus?.(next);
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

  // Every change to the list or the counts marks it dirty; the callbacks hear the result
  // once, after everything applied in the same turn (a retraction and its replacement).
  function changed() {
    if (dirty) return;
    dirty = true;
    queueMicrotask(flush);
  }
  const flush = () => {
    dirty = false;
    if (stopped) return;
    armExpiry();
    const { counts } = list;
    options.onItems?.(list.items.slice());
    if (told?.unread !== counts.unread) options.onUnread?.(counts.unread);
    if (told?.unseen !== counts.unseen) options.onUnseen?.(counts.unseen);
    told = { ...counts };
  };

  // Drop what expired, then wake up again for the next one to go.
  const armExpiry = () => {
    clearTimeout(expiryTimer);
    const next = list.nextExpiry();
    if (next === null) return;
    expiryTimer = setTimeout(expire, Math.min(TIMER_MAX_MS, Math.max(0, next - Date.now())));
  };
  const expire = () => {
    const ids = list.expire(Date.now());
    if (ids.length > 0) options.onExpired?.(ids);
    changed(); // re-arms for the next one
  };

  /**
   * A feed read of the list's view, with what the stream delivered while it was in
   * flight, and whether a state frame (newer than what it read) came meanwhile.
   * @param {string | null} before
   */
  const read = async (before) => {
    /** @type {string[]} */
    const arrived = [];
    arrivals.add(arrived);
    const since = frameTick;
    try {
      const feed = await fetchFeed({ ...connection, ...list.view, limit: options.limit, before });
      return { feed, arrived, overtaken: () => lastFrame > since };
    } finally {
      arrivals.delete(arrived);
    }
  };

  /** @param {string[]} ids */
  const retract = (ids) => {
    // What the list did not hold may still have been counted (an older page, another view).
    if (list.remove(ids).length > 0) void refresh();
    options.onRetracted?.(ids);
  };

  // The replacement a retraction without an id announced did not come after it.
  const settleReplaced = () => {
    clearTimeout(replacedTimer);
    if (replaced.length === 0) return;
    const ids = replaced;
    replaced = [];
    retract(ids);
  };

  /** @param {Notification} item */
  const deliver = (item) => {
    const replaces = replaced;
    replaced = [];
    clearTimeout(replacedTimer);
    const done = list.deliver(item, replaces, Date.now());
    if (done.missing.length > 0) void refresh();
    if (replaces.length > 0) options.onRetracted?.(replaces);
    if (done.item === null) return;
    arrivals.forEach((arrived) => arrived.push(item.id));
    options.onNotification?.(done.item);
  };

  /**
   * @param {StateChange} change
   * @param {Counts} counts
   */
  const apply = (change, counts) => {
    if (list.apply(change, counts)) void refresh();
  };

  // Read the first page again and fold it into the list. Done after a state frame with
  // no change (a stream opened after a gap in which other devices may have changed
  // things, or the preferences changed) and when items may have come back into the view.
  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    const started = generation;
    try {
      const { feed, arrived, overtaken } = await read(null);
      if (stopped) return;
      // A state frame that came meanwhile may be newer than what the read found, and
      // another view's read is not this list's: read again.
      if (started !== generation || overtaken()) {
        refreshAgain = true;
        return;
      }
      list.merge(feed, Date.now());
      list.takeCounts(feed, arrived);
    } catch (err) {
      report(err);
    } finally {
      refreshing = false;
      if (refreshAgain && !stopped) {
        refreshAgain = false;
        void refresh();
      }
    }
  }

  /** @param {string | null} reason */
  async function load(reason) {
    setStatus(reason === null && list.cursor === null ? "connecting" : "reconnecting");
    try {
      const started = ++generation;
      const { feed, arrived, overtaken } = await read(null);
      if (stopped) return;
      list.cursor = feed.cursor ?? feed.last_id;
      if (started === generation) {
        list.replace(feed, Date.now());
        if (!overtaken()) list.takeCounts(feed, arrived);
      } else {
        void refresh(); // the view changed meanwhile
      }
      if (reason !== null) options.onReset?.(reason, feed);
      options.onFeed?.(feed);
      await open(true);
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
      const { feed, arrived, overtaken } = await read(null);
      if (stopped) return;
      [...feed.items].reverse().forEach(deliver);
      list.cursor ??= feed.cursor ?? feed.last_id;
      if (!overtaken()) list.takeCounts(feed, arrived);
    } catch (err) {
      report(err);
    }
  }

  /** @param {boolean} afterLoad the list was just read */
  async function open(afterLoad) {
    const url = new URL("notifications/stream", base);
    if (list.cursor) url.searchParams.set("last_event_id", list.cursor);
    const token = await tokenOf(options.token);
    if (token) url.searchParams.set("token", token);
    if (stopped) return;
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    const current = () => source === es && !stopped;
    // EventSource resumes by the last id it received itself, else by the URL's cursor.
    let resumable = list.cursor !== null;
    let firstFrame = afterLoad;
    // An event without an `id:` line still reports the last id before it as its
    // lastEventId; ids only grow, so an event has an id of its own when that changed.
    let lastId = "";

    /**
     * The event's data and its own id ("" when it came without an `id:` line).
     * @param {Event} event
     * @returns {{data: any, id: string} | null}
     */
    const parse = (event) => {
      const message = /** @type {MessageEvent<string>} */ (event);
      const id = message.lastEventId === lastId ? "" : message.lastEventId;
      lastId = message.lastEventId;
      try {
        return { data: JSON.parse(message.data), id };
      } catch {
        return null;
      }
    };

    es.onopen = () => {
      if (!current()) return;
      attempts = 0;
      setStatus("open");
      if (!resumable) void catchUp();
    };
    es.onerror = () => {
      if (!current()) return;
      settleReplaced();
      firstFrame = false;
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
      const message = current() ? parse(event) : null;
      if (!message) return;
      const item = /** @type {Notification} */ (message.data);
      list.cursor = message.id || item.id;
      resumable = true;
      deliver(item);
    });
    es.addEventListener("retracted", (event) => {
      const message = current() ? parse(event) : null;
      const ids = message?.data?.ids;
      if (!message || !Array.isArray(ids)) return;
      if (!message.id) {
        // A keyed notification replaced these: it follows at once, and takes their place.
        replaced.push(...ids);
        clearTimeout(replacedTimer);
        replacedTimer = setTimeout(settleReplaced, REPLACEMENT_WAIT_MS);
        return;
      }
      settleReplaced();
      list.cursor = message.id;
      resumable = true;
      retract(ids);
    });
    es.addEventListener("state", (event) => {
      const message = current() ? parse(event) : null;
      if (!message) return;
      const frame = /** @type {StateFrame} */ (message.data);
      settleReplaced();
      const { unread, unseen } = list.counts;
      const same = frame.unread === unread && frame.unseen === unseen;
      const first = firstFrame;
      firstFrame = false;
      lastFrame = ++frameTick;
      frames += 1;
      options.onState?.(frame);
      if (frame.change && ACTIONS.has(frame.change.action)) {
        apply(frame.change, frame);
      } else if (!(first && same)) {
        // Counts only, after a gap (or a change of preferences): the list may be behind
        // too, and a read of it has counts that are exact about what the stream replays.
        void refresh();
      }
    });
    es.addEventListener("reset", (event) => {
      if (!current()) return;
      settleReplaced();
      es.close();
      source = null;
      void load(reasonOf(/** @type {MessageEvent<string>} */ (event), "reset"));
    });
    es.addEventListener("evicted", () => {
      if (!current()) return;
      // The user opened too many streams and this, the oldest, had to go: stay down.
      settleReplaced();
      es.close();
      source = null;
      setStatus("evicted");
    });
  }

  async function recover() {
    try {
      await fetchFeed({ ...connection, limit: 1 });
      if (!stopped) await open(false);
    } catch (err) {
      if (stopped) return;
      report(err);
      if (refused(err)) setStatus("closed");
      else retryLater(() => void recover());
    }
  }

  /** @type {Listener} */
  const listener = {
    base,
    changed(change, counts, since) {
      if (stopped) return;
      // The stream's frames are newer than an answer they overtook, and they bring other
      // tabs' changes too; without them (a server that sends none) the answers do it.
      if (since === null ? frames > 0 : lastFrame > since) return;
      apply(change, counts);
    },
    refresh: () => void refresh(),
  };
  subscriptions.add(listener);
  void load(null);

  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(replacedTimer);
    clearTimeout(expiryTimer);
    subscriptions.delete(listener);
    source?.close();
    source = null;
    setStatus("closed");
  };
  return Object.assign(stop, {
    items: () => list.items.slice(),
    counts: () => ({ ...list.counts }),
    hasOlder: () => list.nextBefore !== null,
    async loadOlder() {
      if (list.nextBefore === null) return;
      const started = generation;
      const { feed, arrived, overtaken } = await read(list.nextBefore);
      if (stopped || started !== generation) return;
      list.append(feed, Date.now());
      if (!overtaken()) list.takeCounts(feed, arrived);
    },
    /** @param {View} view */
    async setView(view) {
      list.view = { status: view.status, kind: view.kind, subject_id: view.subject_id };
      const started = ++generation;
      const { feed, arrived, overtaken } = await read(null);
      if (stopped || started !== generation) return;
      list.replace(feed, Date.now());
      if (overtaken()) void refresh(); // a change came while it was read
      else list.takeCounts(feed, arrived);
    },
    markSeen: () => markSeen(list.items[0]?.id ?? null, connection),
  });
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
