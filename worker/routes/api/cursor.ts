import { refuse } from "../../problem";

/** The cursor of a page: the last key of the previous page, base64url of its UTF-8 (opaque to callers). */
export function encodeCursor(lastKey: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(lastKey)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The key a cursor of `encodeCursor` holds; 400 problem for anything else. */
export function decodeCursor(cursor: string): string {
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error("not base64url");
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0)));
  } catch {
    refuse(400, "invalid-cursor", "cursor: not a cursor this API gave (pass `next_cursor` of the previous page unchanged).");
  }
}
