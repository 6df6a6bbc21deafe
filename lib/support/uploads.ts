/**
 * Attachments: files a visitor or an agent uploads, then sends with a message. The bytes live in the store (so a
 * cluster on PostgreSQL needs no shared disk), the type comes from the bytes (`lib/http/sniff.ts`), and a file
 * can be fetched only by who uploaded it and, once sent, by that conversation's visitor and the agents allowed to
 * read the conversation. Unsent uploads are deleted after {@linkcode UNSENT_TTL_MS}.
 *
 * @module
 */
import { isJwt } from "../auth/identity.ts";
import { bearerToken, HttpError, readBody } from "../http/http.ts";
import { ALLOWED_TYPES, safeName, sniff } from "../http/sniff.ts";
import { isUploadId } from "../realtime/protocol.ts";
import { newId, visitorIdFor } from "../store/rows.ts";
import type { AgentRecord, UploadRecord } from "../store/store.ts";
import { mayRead, requestToken, sessionAgent } from "./agents.ts";
import { type SupportDesk, uploadOwner } from "./desk.ts";
import { tokenHash } from "./passwords.ts";
import type { VisitorDesk } from "./visitors.ts";

/** Unsent uploads older than this are deleted. */
export const UNSENT_TTL_MS = 24 * 3600_000;
/** How often unsent uploads are looked for. */
export const UPLOAD_PRUNE_MS = 3600_000;

/** Who sent an upload request: a visitor (its token) or an agent (its session). */
export type Uploader =
  | { kind: "visitor"; visitorId: string }
  | { kind: "agent"; agent: AgentRecord };

/** The `owner` an upload is stored under. */
export const ownerOf = (u: Uploader): string =>
  u.kind === "visitor" ? uploadOwner("visitor", u.visitorId) : uploadOwner("agent", u.agent.id);

/** Receives, authorizes and serves uploads; prunes unsent ones. */
export class Uploads {
  #desk: SupportDesk;
  #visitors: VisitorDesk;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(desk: SupportDesk, visitors: VisitorDesk) {
    this.#desk = desk;
    this.#visitors = visitors;
  }

  /**
   * Who a request comes from: a visitor token (`v_…`) or a user token (a JWT) as `Authorization: Bearer`, else
   * an agent session (its cookie or token). 401 when neither.
   */
  async uploader(req: Request, url: URL): Promise<Uploader> {
    const { app } = this.#desk;
    const bearer = bearerToken(req);
    if (bearer && (bearer.startsWith("v_") || isJwt(bearer))) {
      const visitorId = await this.#visitorId(bearer);
      if (visitorId) return { kind: "visitor", visitorId };
      throw new HttpError(401, "unauthorized", "Unknown visitor token; reconnect the widget");
    }
    const agent = requestToken(req, url) ? await sessionAgent(app, req, url) : undefined;
    if (agent) return { kind: "agent", agent };
    throw new HttpError(
      401,
      "unauthorized",
      "Send the visitor token as Authorization: Bearer, or log in as an agent",
    );
  }

  /** The visitor a token names: a user token's `sub`, or a visitor token we issued. */
  async #visitorId(token: string): Promise<string | undefined> {
    if (isJwt(token)) {
      const identity = await this.#desk.app.verifier.verify(token).catch((err) => {
        throw new HttpError(401, "unauthorized", (err as Error).message);
      });
      return visitorIdFor(await tokenHash(`user:${identity.sub}`));
    }
    return await this.#visitors.knownVisitorId(token);
  }

  /**
   * Stores the body of an upload request: raw bytes with `?name=`, or `multipart/form-data` with a `file`
   * field. 413 past `--max-upload-bytes`, 415 for a type off the allow-list, 429 past `--uploads-per-ip`.
   */
  async receive(req: Request, url: URL, ip: string): Promise<UploadRecord> {
    const { config, guard, store, metrics } = this.#desk.app;
    const who = await this.uploader(req, url);
    if (!guard.uploads.take(ip)) {
      metrics.inc("switchboard_errors_total", { code: "rate_limited" });
      throw new HttpError(429, "rate_limited", "Too many uploads from your address; try again in a minute");
    }
    const max = config.maxUploadBytes;
    const limit = `The file is over the upload limit of ${max} bytes`;
    let bytes: Uint8Array;
    let name = url.searchParams.get("name") ?? "";
    const contentType = req.headers.get("content-type") ?? "";
    if (/^multipart\/form-data/i.test(contentType)) {
      // The form's own framing takes a little more than the file.
      const body = await readBody(req, max + 64 * 1024, "The upload");
      const form = await new Response(body, { headers: { "content-type": contentType } }).formData().catch(
        () => {
          throw new HttpError(400, "bad_request", "The form data could not be read");
        },
      );
      const file = form.get("file");
      if (!(file instanceof File)) throw new HttpError(400, "bad_request", 'Send the file in a "file" field');
      if (file.size > max) throw new HttpError(413, "too_large", limit);
      bytes = new Uint8Array(await file.arrayBuffer());
      name ||= file.name;
    } else {
      bytes = await readBody(req, max, "The file").catch((err) => {
        throw err instanceof HttpError && err.status === 413 ? new HttpError(413, "too_large", limit) : err;
      });
    }
    if (bytes.length === 0) throw new HttpError(400, "bad_request", "The file is empty");
    const type = sniff(bytes, name);
    if (!type) {
      throw new HttpError(
        415,
        "unsupported_type",
        `This type of file cannot be sent; allowed: ${ALLOWED_TYPES}`,
      );
    }
    const upload = await store.saveUpload({
      id: newId(),
      owner: ownerOf(who),
      name: safeName(name, type),
      type: type.mime,
      size: bytes.length,
      data: bytes,
    });
    metrics.inc("switchboard_uploads_total", { type: type.mime.split(";")[0] });
    return upload;
  }

  /**
   * An upload the request may fetch: its uploader, and once sent to a conversation, that conversation's visitor
   * and the agents allowed to read it. 404 when there is none, 403 when it is someone else's.
   */
  async download(req: Request, url: URL, id: string): Promise<UploadRecord> {
    const { store } = this.#desk.app;
    const who = await this.uploader(req, url);
    const upload = isUploadId(id) ? await store.upload(id) : undefined;
    if (!upload) throw new HttpError(404, "not_found", "No such file");
    if (upload.owner === ownerOf(who)) return upload;
    const conversationId = upload.stream?.startsWith("conv:") ? upload.stream.slice(5) : undefined;
    const c = conversationId ? await store.conversation(conversationId) : undefined;
    if (c) {
      if (who.kind === "visitor" ? c.visitorId === who.visitorId : await mayRead(store, who.agent, c)) {
        return upload;
      }
    }
    throw new HttpError(403, "forbidden", "This file belongs to a conversation you cannot read");
  }

  /** Deletes unsent uploads past their day, now and every {@linkcode UPLOAD_PRUNE_MS} (any instance may). */
  start(): void {
    const run = async () => {
      await this.prune().catch((err) =>
        this.#desk.app.log.error("upload_prune_failed", { error: String(err) })
      );
    };
    this.#timer = setInterval(run, UPLOAD_PRUNE_MS);
    this.#desk.later(1000, run);
  }

  /** One pass: returns how many unsent uploads were deleted. */
  async prune(now = Date.now()): Promise<number> {
    const deleted = await this.#desk.app.store.pruneUploads(now - UNSENT_TTL_MS);
    if (deleted > 0) this.#desk.app.log.info("uploads_pruned", { deleted });
    return deleted;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
