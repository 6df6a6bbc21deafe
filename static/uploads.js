/**
 * Attachments, shared by the widget and the agent console: uploading a file (`POST /api/uploads?name=`, the raw
 * bytes, with progress), the composer's tray of pending uploads (attach button, paste, drag and drop), and a
 * message's attachments (images as thumbnails that open the full image, other files as chips that download it).
 *
 * The console's agent is authenticated by its cookie, so `<img src>` and `<a download>` reach the files directly.
 * The widget's visitor has no cookie: it fetches each file with its token ({@linkcode blobLoader}); the pages'
 * CSP allows images from `'self'` and `data:` only, so an image shows as a `data:` URL of the fetched Blob, and a
 * download goes through a `blob:` URL (a navigation, which `img-src` does not govern). File names and sizes always
 * go in as text.
 *
 * ```js
 * const tray = new UploadTray(listEl, { token: () => visitorToken });
 * wireAttach({ tray, button, input, box, zone });
 * // on send: conn.send({ type: "message", text, attachments: tray.ids }); tray.clear();
 * ```
 *
 * @module
 */
import { setText, t } from "./i18n.js";
import { el } from "./ui.js";

/** The server's default upload limit (`--max-upload-bytes`); checked here first, the server has the last word. */
export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
/** The most files one message carries (the server refuses more). */
export const MAX_ATTACHMENTS = 10;

/**
 * A stored upload, as `POST /api/uploads` answers it and messages carry it.
 *
 * @typedef {{id: string, name: string, type: string, size: number, url?: string}} Attachment
 */

/**
 * A size for people: `512 B`, `12 KB`, `1.4 MB` (the same in Chinese).
 *
 * @param {number} bytes
 * @returns {string}
 */
export function humanSize(bytes) {
  const n = Math.max(0, Number(bytes) || 0);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  const mb = n / (1024 * 1024);
  return `${mb < 10 ? mb.toFixed(1) : Math.round(mb)} MB`;
}

/**
 * Where a file is served. Built from the id rather than taken from the message, so a message can never point an
 * `<img>` or a link anywhere else.
 *
 * @param {Attachment} a
 */
function fileUrl(a) {
  return `/api/uploads/${encodeURIComponent(String(a.id))}`;
}

/**
 * The attachments of a message that look like uploads (anything else is ignored).
 *
 * @param {unknown} list
 * @returns {Attachment[]}
 */
export function attachmentsOf(list) {
  if (!Array.isArray(list)) return [];
  return list.filter((a) => a && typeof a.id === "string" && a.id).map((a) => ({
    id: a.id,
    name: typeof a.name === "string" && a.name ? a.name : "file",
    type: typeof a.type === "string" ? a.type : "",
    size: Number(a.size) || 0,
  }));
}

/**
 * A one-line stand-in for a message without text (queue previews, notifications): `📎 name`, or `📎 3 files`.
 *
 * @param {unknown} list
 * @returns {string}
 */
export function attachmentSummary(list) {
  const files = attachmentsOf(list);
  if (files.length === 0) return "";
  return files.length === 1
    ? t("upload.one", { name: files[0].name })
    : t("upload.many", { n: files.length });
}

/** Why an upload failed: the server's error code (`too_large`, `unsupported_type`…) or ours (`network`…). */
export class UploadError extends Error {
  /**
   * @param {string} code
   * @param {string} [message] the server's words, shown when we have none of our own for `code`
   * @param {number} [status]
   */
  constructor(code, message = "", status = 0) {
    super(message || code);
    this.name = "UploadError";
    this.code = code;
    this.status = status;
  }
}

/** Codes with words of their own (`upload.err.<code>`); any other shows the server's message. */
const KNOWN_ERRORS = new Set([
  "too_large",
  "unsupported_type",
  "rate_limited",
  "unauthorized",
  "empty",
  "too_many",
  "network",
]);

/**
 * Shows the words for an upload error in `target`, translated (a language switch rewrites them).
 *
 * @param {HTMLElement} target
 * @param {unknown} err
 */
export function showUploadError(target, err) {
  const code = err instanceof UploadError ? err.code : "network";
  if (KNOWN_ERRORS.has(code)) {
    setText(target, `upload.err.${code}`, {
      max: humanSize(MAX_UPLOAD_BYTES),
      n: MAX_ATTACHMENTS,
    });
  } else setText(target, "upload.err.other", { message: err instanceof Error ? err.message : String(err) });
}

/**
 * Uploads one file with XMLHttpRequest (fetch cannot report upload progress).
 *
 * @param {File} file
 * @param {{token?: string, onProgress?: (fraction: number) => void, signal?: AbortSignal}} [options]
 *   `token`: a visitor or user token, sent as `Authorization: Bearer` (agents send their cookie instead)
 * @returns {Promise<Attachment>}
 */
export function uploadFile(file, { token = "", onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    if (file.size === 0) return reject(new UploadError("empty"));
    if (file.size > MAX_UPLOAD_BYTES) return reject(new UploadError("too_large", "", 413));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/uploads?name=${encodeURIComponent(file.name || "file")}`);
    xhr.setRequestHeader("accept", "application/json");
    if (token) xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    xhr.onload = () => {
      /** @type {Record<string, any>} */
      let body = {};
      try {
        body = JSON.parse(xhr.responseText || "{}");
      } catch {
        // a proxy's HTML error page: the status still says what happened
      }
      if (xhr.status === 201 && body?.upload?.id) return resolve(body.upload);
      const code = typeof body?.error === "string" ? body.error : xhr.status === 413 ? "too_large" : "other";
      reject(new UploadError(code, String(body?.message ?? `HTTP ${xhr.status}`), xhr.status));
    };
    xhr.onerror = () => reject(new UploadError("network"));
    xhr.onabort = () => reject(new UploadError("aborted"));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/**
 * How the widget reaches files without a cookie: each URL fetched once with the token, as a Blob.
 *
 * @param {() => string} token
 * @returns {(url: string) => Promise<Blob>}
 */
export function blobLoader(token) {
  /** @type {Map<string, Promise<Blob>>} */
  const cache = new Map();
  return (url) => {
    let blob = cache.get(url);
    if (!blob) {
      blob = fetch(url, { headers: { authorization: `Bearer ${token()}` } }).then((res) => {
        if (!res.ok) {
          throw new UploadError(res.status === 401 ? "unauthorized" : "other", `HTTP ${res.status}`);
        }
        return res.blob();
      });
      // A failure is not kept: the next render tries again.
      blob.catch(() => cache.delete(url));
      cache.set(url, blob);
    }
    return blob;
  };
}

/** @type {WeakMap<Blob, Promise<string>>} one `data:` URL per Blob (files never change) */
const dataUrls = new WeakMap();

/**
 * The Blob as a `data:` URL, for an `<img>` under the pages' CSP.
 *
 * @param {Blob} blob
 * @returns {Promise<string>}
 */
function dataUrl(blob) {
  let url = dataUrls.get(blob);
  if (!url) {
    url = new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    dataUrls.set(blob, url);
  }
  return url;
}

/** @type {HTMLDialogElement | null} */
let lightbox = null;

/**
 * Shows an image at full size over the page (Escape or the × closes it), with a download link.
 *
 * @param {string} src
 * @param {string} name
 */
export function openImage(src, name) {
  if (!lightbox) {
    lightbox = /** @type {HTMLDialogElement} */ (el("dialog", "lightbox"));
    lightbox.dataset.testid = "lightbox";
    const close = el("button", "quiet lightbox-close", "×");
    close.setAttribute("type", "button");
    close.dataset.i18nAriaLabel = "upload.close";
    close.setAttribute("aria-label", t("upload.close"));
    close.addEventListener("click", () => lightbox?.close());
    const download = /** @type {HTMLAnchorElement} */ (el("a", "button quiet lightbox-download"));
    setText(download, "upload.download");
    const bar = el("div", "lightbox-bar");
    bar.append(el("span", "lightbox-name"), download, close);
    lightbox.append(bar, el("img", "lightbox-image"));
    // A click on the backdrop (the dialog itself, outside its content) closes it too.
    lightbox.addEventListener("click", (event) => {
      if (event.target === lightbox) lightbox?.close();
    });
    document.body.append(lightbox);
  }
  const img = /** @type {HTMLImageElement} */ (lightbox.querySelector(".lightbox-image"));
  img.src = src;
  img.alt = name;
  /** @type {HTMLElement} */ (lightbox.querySelector(".lightbox-name")).textContent = name;
  const download = /** @type {HTMLAnchorElement} */ (lightbox.querySelector(".lightbox-download"));
  download.href = src;
  download.download = name;
  lightbox.showModal();
}

/** Saves `blob` as a download named `name`. @param {Blob} blob @param {string} name */
function saveAs(blob, name) {
  const a = /** @type {HTMLAnchorElement} */ (el("a"));
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The download has its own copy by then.
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

/**
 * A message's attachments, for under its text: `div.attachments` holding a `button.thumb` (with its `<img>`) per
 * image and a file chip (`.file-chip`: name and size) per other file. Null when there are none.
 *
 * @param {unknown} list the message's `attachments`
 * @param {{load?: (url: string) => Promise<Blob>, onError?: (err: unknown) => void}} [how] `load`: how to get a
 *   file without a cookie (the widget); without it the browser fetches the file itself
 * @returns {HTMLElement | null}
 */
export function attachmentsElement(list, { load, onError } = {}) {
  const files = attachmentsOf(list);
  if (files.length === 0) return null;
  const box = el("div", "attachments");
  box.dataset.testid = "attachments";
  for (const a of files) {
    const url = fileUrl(a);
    if (a.type.startsWith("image/")) {
      const button = el("button", "thumb");
      button.setAttribute("type", "button");
      button.title = `${a.name} · ${humanSize(a.size)}`;
      const img = /** @type {HTMLImageElement} */ (el("img"));
      img.alt = a.name;
      img.decoding = "async";
      img.addEventListener("error", () => button.classList.add("broken"));
      if (load) {
        load(url).then(dataUrl).then((src) => img.src = src, (err) => {
          button.classList.add("broken");
          onError?.(err);
        });
      } else img.src = url;
      button.append(img);
      button.addEventListener("click", () => {
        if (img.src) openImage(img.src, a.name);
      });
      box.append(button);
      continue;
    }
    const chip = load ? el("button", "file-chip") : /** @type {HTMLAnchorElement} */ (el("a", "file-chip"));
    chip.dataset.testid = "file-chip";
    chip.title = a.name;
    chip.append(
      el("span", "file-icon", "📄"),
      el("span", "file-name", a.name),
      el("span", "file-size", humanSize(a.size)),
    );
    /** @type {HTMLElement} */ (chip.firstElementChild).setAttribute("aria-hidden", "true");
    if (chip instanceof HTMLAnchorElement) {
      chip.href = url;
      chip.download = a.name;
    } else if (load) {
      chip.setAttribute("type", "button");
      chip.addEventListener("click", () => {
        load(url).then((blob) => saveAs(blob, a.name), (err) => onError?.(err));
      });
    }
    box.append(chip);
  }
  return box;
}

/**
 * One file in the tray: uploading (with its progress bar), done (a chip with its size) or failed (with why).
 *
 * @typedef {object} TrayItem
 * @property {File} file
 * @property {HTMLElement} el
 * @property {"uploading" | "done" | "failed"} state
 * @property {Attachment | null} upload
 * @property {AbortController} abort
 */

/**
 * The composer's pending uploads, as a list of chips in `list` (`li.upload[data-state]`): each file uploads at
 * once, shows its name and a progress bar, then becomes a removable chip; a failed one says why and can be removed.
 */
export class UploadTray {
  /** @type {HTMLElement} */
  #list;
  /** @type {() => string} */
  #token;
  /** @type {() => void} */
  #onChange;
  /** @type {TrayItem[]} */
  #items = [];

  /**
   * @param {HTMLElement} list
   * @param {{token?: () => string, onChange?: () => void}} [options] `token`: the visitor's, for the upload
   *   request; `onChange`: after every add, finish, failure and removal
   */
  constructor(list, { token = () => "", onChange = () => {} } = {}) {
    this.#list = list;
    this.#token = token;
    this.#onChange = onChange;
  }

  /** Whether a file is still uploading (sending now would leave it behind). */
  get busy() {
    return this.#items.some((i) => i.state === "uploading");
  }

  /** The uploaded files, in the order they were added. @returns {Attachment[]} */
  get uploads() {
    return this.#items.flatMap((i) => i.state === "done" && i.upload ? [i.upload] : []);
  }

  /** The ids to send in a message's `attachments`. @returns {string[]} */
  get ids() {
    return this.uploads.map((u) => String(u.id));
  }

  /**
   * Starts uploading `files`; past {@linkcode MAX_ATTACHMENTS} the extra ones show as failed.
   *
   * @param {Iterable<File>} files
   */
  add(files) {
    for (const file of files) {
      const item = this.#item(file);
      this.#items.push(item);
      this.#list.append(item.el);
      const taken = this.#items.filter((i) => i.state !== "failed").length;
      if (taken > MAX_ATTACHMENTS) this.#fail(item, new UploadError("too_many"));
      else this.#upload(item);
    }
    this.#onChange();
  }

  /** Removes every file (uploads still running are cancelled). */
  clear() {
    for (const item of this.#items) item.abort.abort();
    this.#items = [];
    this.#list.replaceChildren();
    this.#onChange();
  }

  /**
   * Shows `items` instead of the current files and returns those (the console keeps one set per conversation;
   * uploads in progress go on while they are put away).
   *
   * @param {TrayItem[]} items
   * @returns {TrayItem[]}
   */
  swap(items) {
    const before = this.#items;
    this.#items = items;
    this.#list.replaceChildren(...items.map((i) => i.el));
    this.#onChange();
    return before;
  }

  /** @param {File} file @returns {TrayItem} */
  #item(file) {
    const li = el("li", "upload");
    li.dataset.testid = "upload";
    li.dataset.state = "uploading";
    const name = el("span", "upload-name", file.name || "file");
    name.title = file.name;
    const size = el("span", "upload-size", humanSize(file.size));
    const progress = /** @type {HTMLProgressElement} */ (el("progress", "upload-progress"));
    progress.max = 1;
    progress.value = 0;
    progress.dataset.i18nAriaLabel = "upload.progress";
    progress.setAttribute("aria-label", t("upload.progress"));
    const error = el("span", "upload-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const remove = el("button", "quiet upload-remove", "×");
    remove.setAttribute("type", "button");
    remove.dataset.i18nAriaLabel = "upload.remove";
    remove.setAttribute("aria-label", t("upload.remove"));
    remove.dataset.i18nTitle = "upload.remove";
    remove.title = t("upload.remove");
    li.append(name, size, progress, error, remove);
    /** @type {TrayItem} */
    const item = { file, el: li, state: "uploading", upload: null, abort: new AbortController() };
    remove.addEventListener("click", () => {
      // The focus would be lost with the button: give it to the next file, else to the page's composer.
      const next = li.nextElementSibling ?? li.previousElementSibling;
      item.abort.abort();
      this.#items = this.#items.filter((i) => i !== item);
      li.remove();
      /** @type {HTMLElement | null} */ (next?.querySelector(".upload-remove"))?.focus();
      this.#onChange();
    });
    return item;
  }

  /** @param {TrayItem} item */
  async #upload(item) {
    const progress = /** @type {HTMLProgressElement} */ (item.el.querySelector("progress"));
    try {
      item.upload = await uploadFile(item.file, {
        token: this.#token(),
        signal: item.abort.signal,
        onProgress: (f) => progress.value = f,
      });
      item.state = "done";
      item.el.dataset.state = "done";
      progress.hidden = true;
      /** @type {HTMLElement} */ (item.el.querySelector(".upload-size")).textContent = humanSize(
        item.upload.size,
      );
    } catch (err) {
      if (item.abort.signal.aborted) return;
      this.#fail(item, err);
    }
    this.#onChange();
  }

  /** @param {TrayItem} item @param {unknown} err */
  #fail(item, err) {
    item.state = "failed";
    item.el.dataset.state = "failed";
    /** @type {HTMLElement} */ (item.el.querySelector("progress")).hidden = true;
    const error = /** @type {HTMLElement} */ (item.el.querySelector(".upload-error"));
    showUploadError(error, err);
    error.hidden = false;
  }
}

/**
 * Wires the ways to attach files: `button` opens the file picker (`input`, a hidden `<input type=file>`), a paste
 * of files into `box`, and files dropped on `zone` (which shows a drop hint while they are over it).
 *
 * @param {object} parts
 * @param {UploadTray} parts.tray
 * @param {HTMLElement} parts.button
 * @param {HTMLInputElement} parts.input
 * @param {HTMLElement} parts.box the message text box
 * @param {HTMLElement} parts.zone
 * @param {() => boolean} [parts.enabled] false while attaching makes no sense (no open conversation)
 */
export function wireAttach({ tray, button, input, box, zone, enabled = () => true }) {
  button.addEventListener("click", () => {
    if (enabled()) input.click();
  });
  input.addEventListener("change", () => {
    if (input.files?.length && enabled()) tray.add(input.files);
    input.value = ""; // the same file again is a new choice
  });

  box.addEventListener("paste", (event) => {
    const data = /** @type {ClipboardEvent} */ (event).clipboardData;
    const files = [...(data?.files ?? [])];
    // Copied text often comes with a picture of itself (office apps): then the text is what was meant.
    if (files.length === 0 || data?.types.includes("text/plain") || !enabled()) return;
    event.preventDefault();
    tray.add(files);
  });

  const hint = el("div", "drop-hint");
  hint.dataset.testid = "drop-hint";
  hint.setAttribute("aria-hidden", "true");
  setText(hint, "upload.dropHint");
  hint.hidden = true;
  zone.classList.add("drop-zone");
  zone.append(hint);
  /** dragenter and dragleave fire for every child crossed: the hint goes when the count is back at zero. */
  let depth = 0;
  /** @param {DragEvent} event */
  const carriesFiles = (event) => Boolean(event.dataTransfer?.types.includes("Files")) && enabled();
  const hide = () => {
    depth = 0;
    hint.hidden = true;
  };
  zone.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth++;
    hint.hidden = false;
  });
  zone.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    if (--depth <= 0) hide();
  });
  zone.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    hide();
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length) tray.add(files);
  });
  // A file dropped next to the zone must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) {
    globalThis.addEventListener(type, (event) => {
      if (/** @type {DragEvent} */ (event).dataTransfer?.types.includes("Files")) event.preventDefault();
    });
  }
}
