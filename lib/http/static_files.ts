/**
 * Pages from `static/`, found relative to this module (never the cwd) so the server and the compiled binary serve
 * them from any directory.
 *
 * The file list is read once at start; a request path is only ever looked up in that list, so no path
 * (`..`, `%2e%2e`, `%2f`, backslashes, NUL) can reach a file outside `static/`.
 *
 * @module
 */

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  txt: "text/plain; charset=utf-8",
  mp3: "audio/mpeg",
  wav: "audio/wav",
};

import { VENDOR_FILES } from "./vendor.ts";

/** Pages that other sites may frame (the visitor widget); every other page is never framed. */
const FRAMEABLE = new Set(["/widget.html"]);

/** The security headers every page carries. */
export function pageHeaders(path: string): Record<string, string> {
  const frameAncestors = FRAMEABLE.has(path) ? "*" : "'none'";
  return {
    "content-security-policy":
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
      `connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors ${frameAncestors}`,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    ...(FRAMEABLE.has(path) ? {} : { "x-frame-options": "DENY" }),
  };
}

/** An in-memory copy of `static/`, keyed by URL path. */
export class StaticFiles {
  #files = new Map<string, { body: Uint8Array<ArrayBuffer>; type: string; etag: string }>();

  /** Reads every file below `dir` (default: `../static` next to this module), and the vendored libraries. */
  static async load(dir = new URL("../../static/", import.meta.url)): Promise<StaticFiles> {
    const files = new StaticFiles();
    await files.#walk(dir, "/");
    for (const [path, f] of Object.entries(VENDOR_FILES)) await files.add(path, f.text, f.type);
    return files;
  }

  async #walk(dir: URL, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) {
        await this.#walk(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`);
      } else if (entry.isFile) {
        const body = await Deno.readFile(new URL(entry.name, dir));
        const ext = entry.name.slice(entry.name.lastIndexOf(".") + 1).toLowerCase();
        await this.#put(`${prefix}${entry.name}`, body, TYPES[ext] ?? "application/octet-stream");
      }
    }
  }

  /** Adds a file that does not live in `static/` (see `vendor.ts`). */
  add(path: string, text: string, type: string): Promise<void> {
    return this.#put(path, new TextEncoder().encode(text), type);
  }

  async #put(path: string, body: Uint8Array<ArrayBuffer>, type: string): Promise<void> {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    const etag = `"${Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
    this.#files.set(path, { body, type, etag });
  }

  /** Whether a URL path names a file. */
  has(path: string): boolean {
    return this.#files.has(path);
  }

  /** The response for a URL path, or `undefined` when there is no such file. */
  serve(path: string, req: Request): Response | undefined {
    const file = this.#files.get(path);
    if (!file) return undefined;
    const headers = {
      "content-type": file.type,
      etag: file.etag,
      "cache-control": "no-cache",
      ...pageHeaders(path),
    };
    if (req.headers.get("if-none-match") === file.etag) return new Response(null, { status: 304, headers });
    return new Response(req.method === "HEAD" ? null : file.body, { headers });
  }
}
