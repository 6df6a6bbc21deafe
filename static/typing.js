/**
 * Typing indicators, both ways: {@linkcode Typers} remembers who is typing (each for a few seconds after their last
 * `typing` frame) and {@linkcode sendTypingOnInput} sends our own `typing` frames while we write, a few seconds
 * apart. How the names are shown is up to each page.
 *
 * @module
 */

/** The shortest time between two of our `typing` frames. */
export const TYPING_EVERY_MS = 2000;
/** How long a name stays after its last `typing` frame (a little longer than {@linkcode TYPING_EVERY_MS}). */
export const TYPING_SHOWN_MS = 3000;

/** Who is typing right now, by a key the page picks (a member id, or one fixed key for "the other side"). */
export class Typers {
  /** @type {Map<string, {name: string, timer: ReturnType<typeof setTimeout>}>} */
  #typers = new Map();
  /** @type {() => void} */
  #onChange;

  /** @param {() => void} onChange called after someone starts, keeps on or stops typing */
  constructor(onChange) {
    this.#onChange = onChange;
  }

  /**
   * Shows `name` under `key` for another {@linkcode TYPING_SHOWN_MS}.
   *
   * @param {string} key
   * @param {string} name
   */
  show(key, name) {
    clearTimeout(this.#typers.get(key)?.timer);
    this.#typers.set(key, { name, timer: setTimeout(() => this.stop(key), TYPING_SHOWN_MS) });
    this.#onChange();
  }

  /**
   * Stops showing `key` (their message arrived, or they left); nothing happens when they were not typing.
   *
   * @param {string} key
   */
  stop(key) {
    const typer = this.#typers.get(key);
    if (!typer) return;
    clearTimeout(typer.timer);
    this.#typers.delete(key);
    this.#onChange();
  }

  /** Forgets everyone at once, without calling `onChange`: the page redraws (or goes away) itself. */
  clear() {
    for (const { timer } of this.#typers.values()) clearTimeout(timer);
    this.#typers.clear();
  }

  /**
   * The names of those typing, in the order they started.
   *
   * @returns {string[]}
   */
  names() {
    return [...this.#typers.values()].map((x) => x.name);
  }
}

/**
 * Calls `send` when the user types into `box` and it holds more than blanks, at most once every
 * {@linkcode TYPING_EVERY_MS}. `send` returns false when it could not send (not connected yet); the next
 * keystroke then tries again.
 *
 * @param {HTMLTextAreaElement} box
 * @param {() => boolean} send
 * @returns {() => void} forgets the last frame, so the next keystroke sends at once (e.g. in a new room)
 */
export function sendTypingOnInput(box, send) {
  let lastSent = 0;
  box.addEventListener("input", () => {
    const now = Date.now();
    if (box.value.trim() === "" || now - lastSent < TYPING_EVERY_MS) return;
    if (send()) lastSent = now;
  });
  return () => {
    lastSent = 0;
  };
}
