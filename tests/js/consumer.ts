// A TypeScript application using tocsin's browser client through its shipped types only
// (tocsin.d.ts; this project does not allow JavaScript): if a type the client promises is
// missing or wrong, `npm run check` fails here.
import {
  archive,
  fetchFeed,
  fetchGroups,
  getPreferences,
  markRead,
  markReadUpTo,
  markSeen,
  markUnread,
  setPreferences,
  subscribe,
  TocsinError,
  unarchive,
  updateState,
  type Counts,
  type Feed,
  type Group,
  type Notification,
  type ReadState,
  type StateFrame,
  type Status,
  type SubscribeOptions,
  type Subscription,
} from "../../service/tocsin/client/tocsin.js";

const shown: Notification[] = [];
let badge = 0;
let unseen = 0;
let status: Status = "connecting";

const options: SubscribeOptions = {
  baseUrl: "https://tocsin.example/",
  token: async () => "a fresh short-lived token",
  limit: 20,
  onFeed: (feed: Feed) => {
    shown.splice(0, shown.length, ...feed.items);
  },
  onNotification: (item) => {
    const when: Date = new Date(item.created_at);
    const who: string = item.actor_id ?? "someone";
    shown.unshift(item);
    console.log(`${when.toISOString()} ${who}: ${item.kind} ${item.text} (${item.subject_id})`);
  },
  onReset: (reason: string, feed) => console.log(`reset (${reason}), ${feed.items.length} items`),
  onUnread: (count: number) => {
    badge = count;
  },
  onStatus: (next) => {
    status = next;
  },
  onItems: (items: Notification[]) => {
    const read = items.filter((item) => item.state.read).length;
    const keyed = items.filter((item) => item.key != null).map((item) => item.key);
    const expiring = items.map((item) => item.expires_at ?? null).filter((at) => at !== null);
    console.log(`${items.length} listed, ${read} read`, keyed, expiring);
  },
  onUnseen: (count: number) => {
    unseen = count;
  },
  onState: (frame: StateFrame) => {
    if (frame.change) console.log(frame.change.action, frame.change.ids ?? frame.change.up_to);
    console.log(frame.unread, frame.unseen);
  },
  onRetracted: (ids: string[]) => console.log("retracted", ids.join()),
  onExpired: (ids: string[]) => console.log("expired", ids.join()),
  onError: (error: Error) => {
    if (error instanceof TocsinError && error.status === 401) console.log("sign in again");
  },
};

const stop: () => void = subscribe(options);
const bell: Subscription = subscribe({ status: "unread", kind: "comment.created" });

export async function openBell(): Promise<number> {
  const counts: Counts = await bell.markSeen();
  if (bell.hasOlder()) await bell.loadOlder();
  await bell.setView({ status: "archived" });
  console.log(bell.items().length, bell.counts().unread);
  return counts.unseen + unseen;
}

export async function manage(item: Notification): Promise<Group[]> {
  await markRead([item.id]);
  await markUnread(item.id);
  await markSeen(item.id);
  await markSeen();
  await archive(item.id, { token: "t" });
  await unarchive(item.id);
  await updateState("read", { subject_id: item.subject_id });
  await updateState("seen", { all: true });
  const { muted_kinds } = await getPreferences();
  await setPreferences({ muted_kinds: [...muted_kinds, "build.*"] });
  const unreadPage: Feed = await fetchFeed({ status: "unread", kind: "mention", limit: 10 });
  console.log(unreadPage.unseen, unreadPage.items[0]?.state.archived);
  const { groups, next_before } = await fetchGroups({ limit: 5 });
  console.log(next_before, groups[0]?.actors.join(", "), groups[0]?.latest.text);
  return groups;
}

export async function olderPage(): Promise<Notification[]> {
  const oldest = shown.at(-1)?.id ?? null;
  const page: Feed = await fetchFeed({ before: oldest, limit: 20, token: "t" });
  const next: string | null = page.next_before;
  console.log(next, page.last_id, page.unread);
  return page.items;
}

export async function readAll(): Promise<number> {
  const newest = shown[0];
  if (newest === undefined) return badge;
  const state: ReadState = await markReadUpTo(newest.id);
  return state.unread;
}

export function leave(): Status {
  stop();
  bell();
  return status;
}

// What the types refuse, as an application would get it wrong.
// @ts-expect-error: a status the client never reports
const wrong: Status = "offline";
// @ts-expect-error: markRead takes the id of a notification, not the notification
void markRead(shown[0]!);
// @ts-expect-error: callbacks are checked too
subscribe({ onUnread: (count: string) => count.length });
// @ts-expect-error: an action the server does not know
void updateState("delete", { all: true });
// @ts-expect-error: a selector names what it selects
void updateState("read", { everything: true });
// @ts-expect-error: a view the feed does not have
subscribe({ status: "starred" });
export { wrong };
