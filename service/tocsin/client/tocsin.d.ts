/**
 * A page of the signed-in user's feed, newest first: items strictly older than `before`.
 * @param {Connection & {before?: string | null, limit?: number}} [options]
 * @returns {Promise<Feed>}
 */
export function fetchFeed(options?: Connection & {
    before?: string | null;
    limit?: number;
}): Promise<Feed>;
/**
 * Mark everything up to and including `id` read; every subscription (in every tab)
 * of this tocsin hears the new unread count.
 * @param {string} id
 * @param {Connection} [options]
 * @returns {Promise<ReadState>}
 */
export function markRead(id: string, options?: Connection): Promise<ReadState>;
/**
 * Follow the signed-in user's notifications live: each arrives once, in order, across
 * reconnects and server restarts.
 * @param {SubscribeOptions} [options]
 * @returns {() => void} stops following
 */
export function subscribe(options?: SubscribeOptions): () => void;
/** An HTTP answer other than success; `status` is its code (0 for a network failure). */
export class TocsinError extends Error {
    /**
     * @param {number} status
     * @param {string} message
     */
    constructor(status: number, message: string);
    status: number;
}
/**
 * A notification (contract §2).
 */
export type Notification = {
    /**
     * opaque, starts `ntf_`
     */
    id: string;
    kind: string;
    /**
     * what the user clicks on
     */
    subject_id: string;
    /**
     * who did the thing
     */
    actor_id: string | null;
    /**
     * RFC 3339 UTC
     */
    created_at: string;
    text: string;
    meta: Record<string, unknown>;
};
/**
 * A page of the feed, newest first (contract §6).
 */
export type Feed = {
    items: Notification[];
    /**
     * cursor of the next (older) page, null at the end
     */
    next_before: string | null;
    /**
     * the newest id the user has
     */
    last_id: string | null;
    /**
     * how many are newer than the read marker
     */
    unread: number;
    /**
     * where a stream opened after this read resumes (never null)
     */
    cursor?: string | undefined;
};
/**
 * The answer of `markRead`.
 */
export type ReadState = {
    up_to: string | null;
    unread: number;
};
/**
 * Where the connection stands: `connecting` (first load), `open`, `reconnecting`
 * (the browser is coming back by itself), `evicted` (another tab took the slot; never
 * reconnects), `closed` (unsubscribed, or the server refused the credentials).
 */
export type Status = "connecting" | "open" | "reconnecting" | "evicted" | "closed";
/**
 * A bearer token, or a function that returns a fresh one. Without it the browser's
 * `tocsin_token` cookie is used. The stream carries it as `?token=`, which tocsin
 * accepts only for tokens living at most 300 s: pass a function so every
 * reconnect gets a fresh one.
 */
export type TokenSource = string | (() => string | Promise<string>);
/**
 * Where tocsin is and who speaks.
 */
export type Connection = {
    /**
     * tocsin's address; defaults to where this module was loaded from
     */
    baseUrl?: string | undefined;
    token?: TokenSource | undefined;
};
/**
 * What `subscribe` tells its caller, each optional (a new kind of event adds one here).
 */
export type Callbacks = {
    /**
     * a new notification, once per id
     */
    onNotification?: ((item: Notification) => void) | undefined;
    /**
     * the feed's first page: at start and after a reset
     */
    onFeed?: ((feed: Feed) => void) | undefined;
    /**
     * the server could not resume
     * (reason), so the feed was read again; `onFeed` follows with it
     */
    onReset?: ((reason: string, feed: Feed) => void) | undefined;
    /**
     * the unread count changed
     */
    onUnread?: ((count: number) => void) | undefined;
    /**
     * the connection status changed
     */
    onStatus?: ((status: Status) => void) | undefined;
    /**
     * a request failed (it is retried unless refused)
     */
    onError?: ((error: Error) => void) | undefined;
};
/**
 * What `subscribe` takes: where tocsin is, how much of the feed to read first
 * (`limit`, default 50), and the callbacks.
 */
export type SubscribeOptions = Connection & Callbacks & {
    limit?: number;
};
