// A TypeScript application using tocsin's browser client through its shipped types only
// (tocsin.d.ts; this project does not allow JavaScript): if a type the client promises is
// missing or wrong, `npm run check` fails here.
import {
  fetchFeed,
  markRead,
  subscribe,
  TocsinError,
  type Feed,
  type Notification,
  type ReadState,
  type Status,
  type SubscribeOptions,
} from "../../service/tocsin/client/tocsin.js";

const shown: Notification[] = [];
let badge = 0;
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
  onError: (error: Error) => {
    if (error instanceof TocsinError && error.status === 401) console.log("sign in again");
  },
};

const stop: () => void = subscribe(options);

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
  const state: ReadState = await markRead(newest.id);
  return state.unread;
}

export function leave(): Status {
  stop();
  return status;
}

// What the types refuse, as an application would get it wrong.
// @ts-expect-error: a status the client never reports
const wrong: Status = "offline";
// @ts-expect-error: markRead takes the id of a notification, not the notification
void markRead(shown[0]!);
// @ts-expect-error: callbacks are checked too
subscribe({ onUnread: (count: string) => count.length });
export { wrong };
