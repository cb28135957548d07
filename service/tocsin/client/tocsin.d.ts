/**
 * A page of the signed-in user's feed, newest first: items strictly older than `before`,
 * of the view asked for (default: everything not archived).
 * @param {FeedQuery} [options]
 * @returns {Promise<Feed>}
 */
export function fetchFeed(options?: FeedQuery): Promise<Feed>;
/**
 * A page of the feed collapsed by `(kind, subject_id)`, newest group first.
 * @param {Connection & {before?: string | null, limit?: number}} [options]
 * @returns {Promise<Groups>}
 */
export function fetchGroups(options?: Connection & {
    before?: string | null;
    limit?: number;
}): Promise<Groups>;
/**
 * The signed-in user's preferences.
 * @param {Connection} [options]
 * @returns {Promise<Preferences>}
 */
export function getPreferences(options?: Connection): Promise<Preferences>;
/**
 * Replace the signed-in user's preferences; every list of this tocsin is read again
 * (muted kinds leave it, unmuted ones come back).
 * @param {Preferences} preferences
 * @param {Connection} [options]
 * @returns {Promise<Preferences>}
 */
export function setPreferences(preferences: Preferences, options?: Connection): Promise<Preferences>;
/**
 * Change the state of the selected notifications (contract §9). Every subscription of
 * this tocsin in this tab applies it at once; the server tells every other tab and
 * device with a state frame (and other tabs of this browser hear it here too).
 * @param {Action} action
 * @param {Selector} selector
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function updateState(action: Action, selector: Selector, options?: Connection): Promise<Counts>;
/**
 * Mark these notifications (one id or several) read.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markRead(id: string | string[], options?: Connection): Promise<Counts>;
/**
 * Mark these notifications unread again, however they became read.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markUnread(id: string | string[], options?: Connection): Promise<Counts>;
/**
 * Mark everything up to and including `id` read.
 * @param {string} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markReadUpTo(id: string, options?: Connection): Promise<Counts>;
/**
 * Mark seen (what opening the bell does) everything up to and including `upTo`, or
 * everything the user has when it is null.
 * @param {string | null} [upTo]
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function markSeen(upTo?: string | null, options?: Connection): Promise<Counts>;
/**
 * Archive these notifications: they leave the default list and the counts.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function archive(id: string | string[], options?: Connection): Promise<Counts>;
/**
 * Bring archived notifications back.
 * @param {string | string[]} id
 * @param {Connection} [options]
 * @returns {Promise<Counts>}
 */
export function unarchive(id: string | string[], options?: Connection): Promise<Counts>;
/**
 * Follow the signed-in user's notifications live: each arrives once, in order, across
 * reconnects and server restarts, and the list and counts stay in step with every
 * device of the user.
 * @param {SubscribeOptions} [options]
 * @returns {Subscription}
 */
export function subscribe(options?: SubscribeOptions): Subscription;
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
 * A notification (contract §2, §10) as the client hands it out.
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
    /**
     * the producer's name for it: a newer one with the same key replaces it
     */
    key?: string | null | undefined;
    /**
     * RFC 3339 UTC; the client drops it from its list then
     */
    expires_at?: string | null | undefined;
    /**
     * the user's state of it (a live one starts all false)
     */
    state: ItemState;
};
/**
 * One notification's state for the user (contract §9).
 */
export type ItemState = {
    read: boolean;
    seen: boolean;
    archived: boolean;
};
/**
 * The user's counts: `unread` (not read, not archived, not muted) and `unseen` (also
 * not seen: what the bell's badge shows).
 */
export type Counts = {
    unread: number;
    unseen: number;
};
/**
 * What `markRead` answered before there was `Counts` (kept for applications using it).
 */
export type ReadState = Counts;
/**
 * What a state change does.
 */
export type Action = "read" | "unread" | "seen" | "archive" | "unarchive";
/**
 * Which notifications a state change applies to: exactly one of these.
 */
export type Selector = {
    ids: string[];
} | {
    up_to: string;
} | {
    kind: string;
} | {
    subject_id: string;
} | {
    all: true;
};
/**
 * A state change as the server reports it: the action and its one selector.
 */
export type StateChange = {
    action: Action;
    ids?: string[] | undefined;
    up_to?: string | undefined;
    kind?: string | undefined;
    subject_id?: string | undefined;
    all?: boolean | undefined;
};
/**
 * A `state` frame: the counts after a change made anywhere (`change`), or the current
 * counts (no `change`: right after the stream opens, or after the preferences changed).
 */
export type StateFrame = Counts & {
    change?: StateChange;
};
/**
 * Which notifications a list holds: `status` (default: everything not archived),
 * `kind` and `subject_id` (exact match).
 */
export type FeedStatus = "all" | "unread" | "unseen" | "read" | "archived";
export type View = {
    status?: FeedStatus | undefined;
    kind?: string | undefined;
    subject_id?: string | undefined;
};
/**
 * A page of the feed, newest first (contract §6, §9).
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
    unread: number;
    unseen: number;
    /**
     * where a stream opened after this read resumes (never null)
     */
    cursor?: string | undefined;
};
/**
 * Notifications collapsed by `(kind, subject_id)` (contract §10).
 */
export type Group = {
    kind: string;
    subject_id: string;
    /**
     * how many notifications it holds
     */
    count: number;
    /**
     * how many of them are unread
     */
    unread: number;
    /**
     * up to 3 distinct actor ids, newest first
     */
    actors: string[];
    /**
     * its newest notification
     */
    latest: Notification;
};
/**
 * A page of groups, newest group first.
 */
export type Groups = {
    groups: Group[];
    /**
     * cursor of the next (older) page, null at the end
     */
    next_before: string | null;
};
/**
 * The user's preferences: kinds (or `prefix.*`) that are stored but not shown or counted.
 */
export type Preferences = {
    muted_kinds: string[];
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
 * What a feed read asks for: a view, items strictly older than `before`, `limit` of them.
 */
export type FeedQuery = Connection & View & {
    before?: string | null;
    limit?: number;
};
/**
 * What `subscribe` tells its caller, each optional (a new kind of event adds one here).
 * Changes that arrive together are applied together: `onItems`, `onUnread` and
 * `onUnseen` are called once for them, so a replaced item never shows beside its
 * replacement and never leaves a gap.
 */
export type Callbacks = {
    /**
     * the list (newest first) after a change
     */
    onItems?: ((items: Notification[]) => void) | undefined;
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
     * the unseen count (the badge) changed
     */
    onUnseen?: ((count: number) => void) | undefined;
    /**
     * a state frame arrived (a change anywhere)
     */
    onState?: ((frame: StateFrame) => void) | undefined;
    /**
     * the producer retracted these notifications
     */
    onRetracted?: ((ids: string[]) => void) | undefined;
    /**
     * these notifications' `expires_at` passed
     */
    onExpired?: ((ids: string[]) => void) | undefined;
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
 * What `subscribe` takes: where tocsin is, which view to keep (default: everything not
 * archived), how many items a page holds (`limit`, default the server's), the callbacks.
 */
export type SubscribeOptions = Connection & View & Callbacks & {
    limit?: number;
};
/**
 * What `subscribe` returns: call it to stop following; its methods reach the list.
 */
export type Subscription = (() => void) & SubscriptionControls;
export type SubscriptionControls = {
    /**
     * the list now, newest first
     */
    items: () => Notification[];
    /**
     * the counts now
     */
    counts: () => Counts;
    /**
     * whether `loadOlder` would find more
     */
    hasOlder: () => boolean;
    /**
     * append the next older page to the list
     */
    loadOlder: () => Promise<void>;
    /**
     * show another view (the stream stays open)
     */
    setView: (view: View) => Promise<void>;
    /**
     * mark seen everything up to the newest listed item
     */
    markSeen: () => Promise<Counts>;
};
/**
 * A subscription of this tab, as state changes made here reach it.
 */
export type Listener = {
    base: string;
    /**
     *   apply a change answered here (`since`: the state frame tick when it was asked) or in
     *   another tab (null)
     */
    changed: (change: StateChange, counts: Counts, since: number | null) => void;
    /**
     * read the list again
     */
    refresh: () => void;
};
