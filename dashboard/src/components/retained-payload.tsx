import { useEffect, useState } from "preact/hooks";

/** A retained message's payload: base64 from the API, and its text when it is valid UTF-8. */
export interface Payload {
  topic: string;
  payload: string;
  payload_text?: string;
  size: number;
}

function bytesOf(base64: string): Uint8Array {
  const bin = atob(base64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A hex dump: offset, 16 bytes in hex, the printable ASCII beside them. */
export function hexDump(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

/** The text pretty-printed when it is JSON (an object or array), else undefined. */
export function prettyJson(text: string): string | undefined {
  const t = text.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return undefined;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return undefined;
  }
}

type Mode = "text" | "hex";

/** The payload as text (JSON pretty-printed) or as a hex dump; bytes that are not UTF-8 only as hex. */
export function PayloadView({ message }: { message: Payload }) {
  const isText = message.payload_text !== undefined;
  const [mode, setMode] = useState<Mode>(isText ? "text" : "hex");
  useEffect(() => setMode(message.payload_text !== undefined ? "text" : "hex"), [message.topic, message.payload]);
  const json = isText ? prettyJson(message.payload_text!) : undefined;
  const shown = mode === "text" && isText ? (json ?? message.payload_text!) : hexDump(bytesOf(message.payload));
  return (
    <div class="rt-payload">
      <div class="dv-row" role="group" aria-label="Payload view">
        <strong>Payload</strong>
        <label class="dv-inline">
          <input type="radio" name="rt-mode" checked={mode === "text"} disabled={!isText} onChange={() => setMode("text")} data-testid="payload-text-mode" />
          Text{json !== undefined && " (JSON)"}
        </label>
        <label class="dv-inline">
          <input type="radio" name="rt-mode" checked={mode === "hex"} onChange={() => setMode("hex")} data-testid="payload-hex-mode" />
          Hex
        </label>
        {!isText && <span class="dv-muted">not valid UTF-8: hex only</span>}
        {message.size === 0 && <span class="dv-muted">empty payload</span>}
      </div>
      <pre class={mode === "hex" ? "rt-pre rt-hex" : "rt-pre"} data-testid="payload" data-mode={mode}>
        {shown}
      </pre>
    </div>
  );
}
