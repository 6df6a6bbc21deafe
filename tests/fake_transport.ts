/**
 * A fake of the network for unit tests of `Conn` and `Hub`: a {@linkcode Transport} that records what is sent and
 * how it is closed, with a native buffer the test sets by hand.
 *
 * @module
 */
import type { Transport } from "../lib/realtime/conn.ts";

/** A socket that records frames; `bufferedAmount` and `readyState` are set by the test. */
export class FakeTransport implements Transport {
  /** Every frame handed to `send()`, in order. */
  readonly sent: (string | ArrayBufferLike | Blob | ArrayBufferView)[] = [];
  /** Every `close()` call, in order. */
  readonly closes: { code: number | undefined; reason: string | undefined }[] = [];
  /** Bytes in the "native buffer": a test raises it to play a peer that does not read. */
  bufferedAmount = 0;
  readyState: Transport["readyState"] = WebSocket.OPEN;

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.readyState !== WebSocket.OPEN) throw new DOMException("socket is not open", "InvalidStateError");
    this.sent.push(data);
  }

  /** Like a WebSocket, moves to CLOSING; the close event (and CLOSED) is the test's to play. */
  close(code?: number, reason?: string): void {
    this.closes.push({ code, reason });
    this.readyState = WebSocket.CLOSING;
  }

  /** The text frames sent so far. */
  get texts(): string[] {
    return this.sent.filter((f): f is string => typeof f === "string");
  }
}
