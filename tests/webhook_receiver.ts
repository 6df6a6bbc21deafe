/**
 * A webhook receiver for tests, on port 0: it records every request and answers what the test decides.
 *
 * @module
 */

type Frame = Record<string, unknown>;

/** The test signing secret. */
export const SECRET = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;

/** One request the receiver got. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  event: Frame;
  /** What the receiver answered. */
  verdict?: number | "hang";
}

/** A webhook receiver on port 0: `answer` decides each request's fate (a status, or "hang"). */
export function receiver(answer: (r: Received, tries: number) => number | "hang") {
  const requests: Received[] = [];
  const tries = new Map<string, number>();
  const waiters: (() => void)[] = [];
  const closing = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    const r: Received = {
      id: req.headers.get("webhook-id") ?? "",
      timestamp: req.headers.get("webhook-timestamp") ?? "",
      signature: req.headers.get("webhook-signature") ?? "",
      body,
      event: JSON.parse(body),
    };
    requests.push(r);
    const n = (tries.get(r.id) ?? 0) + 1;
    tries.set(r.id, n);
    for (const w of waiters.splice(0)) w();
    const verdict = answer(r, n);
    r.verdict = verdict;
    if (verdict === "hang") {
      // Until the sender gives up, or the receiver closes (a killed sender's socket may not say so).
      await Promise.race([
        new Promise((resolve) => req.signal.addEventListener("abort", resolve)),
        closing.promise,
      ]);
      return new Response("too late");
    }
    return new Response(null, { status: verdict });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    requests,
    tries,
    /** Waits until `ok` holds for the requests so far. */
    async until(ok: (rs: Received[]) => boolean, ms = 20_000) {
      const end = Date.now() + ms;
      while (!ok(requests)) {
        if (Date.now() > end) {
          throw new Error(
            `receiver: condition not met; got ${JSON.stringify(requests.map((r) => [r.id, r.event.type]))}`,
          );
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          timer = setTimeout(resolve, 200);
        });
        clearTimeout(timer);
      }
    },
    close: () => {
      closing.resolve();
      return server.shutdown();
    },
  };
}
