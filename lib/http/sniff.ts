/**
 * What a file is, by its own bytes: the allow-list of uploads. A name or a `Content-Type` header says nothing
 * (anyone can call `evil.html` `cat.png`), so the type comes from magic numbers and structure only, and the
 * stored name gets the extension of the type found.
 *
 * Allowed: PNG, JPEG, GIF and WebP images; PDF; UTF-8 plain text (and CSV); Office Open XML (docx, xlsx, pptx),
 * OpenDocument (odt, ods, odp) and the legacy Office formats (doc, xls, ppt). Everything else is refused,
 * SVG and HTML included (they can carry script).
 *
 * @module
 */

/** A type on the allow-list. */
export interface FileType {
  /** The MIME type the file is served with. */
  mime: string;
  /** Extensions a name of this type may end with; the first is added to a name that has none of them. */
  extensions: readonly string[];
  /** Images are shown inline (thumbnails); everything else downloads. */
  image: boolean;
}

const type = (mime: string, extensions: string[], image = false): FileType => ({ mime, extensions, image });

const PNG = type("image/png", ["png"], true);
const JPEG = type("image/jpeg", ["jpg", "jpeg"], true);
const GIF = type("image/gif", ["gif"], true);
const WEBP = type("image/webp", ["webp"], true);
const PDF = type("application/pdf", ["pdf"]);
const TEXT = type("text/plain; charset=utf-8", ["txt", "log", "md"]);
const CSV = type("text/csv; charset=utf-8", ["csv"]);
const OOXML: Record<string, FileType> = {
  "word/": type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ["docx"]),
  "xl/": type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ["xlsx"]),
  "ppt/": type("application/vnd.openxmlformats-officedocument.presentationml.presentation", ["pptx"]),
};
const ODF: Record<string, FileType> = {
  "application/vnd.oasis.opendocument.text": type("application/vnd.oasis.opendocument.text", ["odt"]),
  "application/vnd.oasis.opendocument.spreadsheet": type("application/vnd.oasis.opendocument.spreadsheet", [
    "ods",
  ]),
  "application/vnd.oasis.opendocument.presentation": type(
    "application/vnd.oasis.opendocument.presentation",
    ["odp"],
  ),
};
/** The legacy Office formats share one container (OLE2); the name's extension tells which it is. */
const OLE: Record<string, FileType> = {
  doc: type("application/msword", ["doc"]),
  xls: type("application/vnd.ms-excel", ["xls"]),
  ppt: type("application/vnd.ms-powerpoint", ["ppt"]),
};

const ascii = (bytes: Uint8Array, from: number, to: number): string =>
  String.fromCharCode(...bytes.subarray(from, Math.min(to, bytes.length)));

const startsWith = (bytes: Uint8Array, magic: readonly number[], at = 0): boolean =>
  bytes.length >= at + magic.length && magic.every((b, i) => bytes[at + i] === b);

/** The lower-cased extension of a name ("" when it has none). */
export function extensionOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** Whether the bytes are UTF-8 text: no NUL and no control characters but tab, line feed, form feed, return. */
function isText(bytes: Uint8Array): boolean {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  // deno-lint-ignore no-control-regex
  return !/[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(text);
}

/** Whether a ZIP archive holds an entry whose name starts with `prefix` (names are stored uncompressed). */
function zipHasEntry(bytes: Uint8Array, prefix: string): boolean {
  const needle = new TextEncoder().encode(prefix);
  // Local file headers (PK\3\4) carry the entry name at offset 30.
  for (let i = 0; i + 30 + needle.length <= bytes.length; i++) {
    if (bytes[i] !== 0x50 || bytes[i + 1] !== 0x4b || bytes[i + 2] !== 3 || bytes[i + 3] !== 4) continue;
    if (startsWith(bytes, [...needle], i + 30)) return true;
  }
  return false;
}

/** The allowed type of a file, by its bytes (and, for legacy Office files and CSV, its name); undefined if none. */
export function sniff(bytes: Uint8Array, name: string): FileType | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return PNG;
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return JPEG;
  const head = ascii(bytes, 0, 16);
  if (head.startsWith("GIF87a") || head.startsWith("GIF89a")) return GIF;
  if (head.startsWith("RIFF") && head.slice(8, 12) === "WEBP") return WEBP;
  if (head.startsWith("%PDF-")) return PDF;
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) {
    // OpenDocument: the first entry is an uncompressed `mimetype` holding the type.
    if (ascii(bytes, 30, 38) === "mimetype") {
      const mime = ascii(bytes, 38, 38 + 60);
      for (const [key, t] of Object.entries(ODF)) if (mime.startsWith(key)) return t;
    }
    if (zipHasEntry(bytes, "[Content_Types].xml")) {
      for (const [dir, t] of Object.entries(OOXML)) if (zipHasEntry(bytes, dir)) return t;
    }
    return undefined; // any other archive
  }
  if (startsWith(bytes, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return OLE[extensionOf(name)];
  if (bytes.length > 0 && isText(bytes)) return extensionOf(name) === "csv" ? CSV : TEXT;
  return undefined;
}

/**
 * A safe file name to store and offer for download: no directories, no control characters, at most 120
 * characters, and ending with an extension of the type the bytes have (`evil.html` sent as text becomes
 * `evil.html.txt`).
 */
export function safeName(name: string, t: FileType): string {
  // deno-lint-ignore no-control-regex
  let base = (name.split(/[\\/]/).pop() ?? "").replace(/[\u0000-\u001f\u007f"<>:|?*]/g, "").trim();
  base = [...base].slice(0, 120).join("").replace(/^\.+/, "");
  if (base === "") base = "file";
  return t.extensions.includes(extensionOf(base)) ? base : `${base}.${t.extensions[0]}`;
}

/** Whether a stored type is an image (shown inline). */
export const isImage = (mime: string): boolean => [PNG, JPEG, GIF, WEBP].some((t) => t.mime === mime);

/** What the allow-list says in an error message. */
export const ALLOWED_TYPES =
  "images (PNG, JPEG, GIF, WebP), PDF, plain text or CSV, and Word, Excel, PowerPoint or OpenDocument files";
