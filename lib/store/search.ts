/**
 * The word index of support messages, the same on both databases: SQLite keeps it in an FTS5 table, PostgreSQL
 * in a `tsvector` column with a GIN index. Words are cut here, in one place, so both find the same things:
 *
 * - letters and digits make words ("Order-12345" → `order`, `12345`), case and width folded (NFKC, lower case);
 * - every Han, kana or Hangul character is a word of its own, so a run of them is found as a phrase: "订单" finds
 *   "我的订单还没到" (the characters 订 and 单 next to each other), and "单订" does not.
 *
 * A query matches when every one of its words is found (in any order), the last character of each word as a
 * prefix ("ord" finds "order").
 *
 * @module
 */

/** A word: one CJK character, or a run of other letters and digits. */
const TOKEN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]|[\p{L}\p{N}]+/gu;

/** The index words of a text, in order. */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const m of text.normalize("NFKC").toLowerCase().matchAll(TOKEN)) {
    // Very long runs are not words anyone searches for; they would only bloat the index.
    if (m[0].length <= 64) out.push(m[0]);
  }
  return out;
}

/** The words of a search query: each whitespace-separated part becomes a phrase of index words. */
export function queryPhrases(q: string): string[][] {
  return q.split(/\s+/).map(words).filter((p) => p.length > 0).slice(0, 16);
}

/** What a message contributes to the index, per database. */
export function indexTerms(dialect: "sqlite" | "postgres", text: string): string {
  const list = words(text);
  // FTS5 tokenizes space-separated words itself; a tsvector literal carries each word with its position.
  return dialect === "sqlite" ? list.join(" ") : list.map((w, i) => `'${w}':${i + 1}`).join(" ");
}

/** The match expression of a query, per database; undefined when it holds no words. */
export function matchExpression(dialect: "sqlite" | "postgres", q: string): string | undefined {
  const phrases = queryPhrases(q);
  if (phrases.length === 0) return undefined;
  if (dialect === "sqlite") return phrases.map((p) => `"${p.join(" ")}"*`).join(" AND ");
  return phrases.map((p) => `(${p.map((w, i) => `'${w}'${i === p.length - 1 ? ":*" : ""}`).join(" <-> ")})`)
    .join(" & ");
}

/** The condition on `message_search` rows that match a query expression (one parameter). */
export const MATCH_CONDITION: Record<"sqlite" | "postgres", string> = {
  sqlite: "message_search MATCH ?",
  postgres: "terms @@ CAST(? AS tsquery)",
};

/** Inserts one index row; parameters: conversation id, seq, terms. */
export const INSERT_SEARCH: Record<"sqlite" | "postgres", string> = {
  sqlite: "INSERT INTO message_search (conversation_id, seq, terms) VALUES (?, ?, ?)",
  postgres: "INSERT INTO message_search (conversation_id, seq, terms) VALUES (?, ?, CAST(? AS tsvector))",
};

/** Whether a stream's messages are indexed (support conversations). */
export const indexed = (stream: string): boolean => stream.startsWith("conv:");
