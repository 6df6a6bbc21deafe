/**
 * The first request head of a raw connection, read by hand: what the own transport's front (`front.ts`) needs to
 * decide between our WebSocket upgrade and `Deno.serve`, and what the bench's own-framing peer reads too.
 *
 * @module
 */

/** Largest request head read. */
export const MAX_HEAD_BYTES = 16 * 1024;

const latin1 = new TextDecoder("latin1");

/** A request head: method, target, headers, and the bytes read after it. */
export interface Head {
  method: string;
  target: string;
  headers: Headers;
  rest: Uint8Array;
  raw: Uint8Array;
}

/** Reads the first request head; null when the peer ends, stalls or sends too much. */
export async function readHead(conn: Deno.Conn): Promise<Head | null | "bad"> {
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(chunk);
    if (n === null) return null;
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
    const end = indexOfHeadEnd(buf);
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) return "bad";
      continue;
    }
    const lines = latin1.decode(buf.subarray(0, end)).split("\r\n");
    const [method, target, version] = lines[0].split(" ");
    if (!method || !target || !version?.startsWith("HTTP/1.")) return "bad";
    const headers = new Headers();
    try {
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon <= 0) return "bad";
        headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
    } catch {
      return "bad";
    }
    return { method, target, headers, rest: buf.subarray(end + 4), raw: buf };
  }
}

function indexOfHeadEnd(buf: Uint8Array): number {
  for (let i = 3; i < buf.length; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i - 3;
  }
  return -1;
}

export function isUpgrade(head: Head): boolean {
  return head.method === "GET" && head.headers.get("upgrade")?.toLowerCase() === "websocket" &&
    /\bupgrade\b/i.test(head.headers.get("connection") ?? "");
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(off === 0 ? bytes : bytes.subarray(off));
}
