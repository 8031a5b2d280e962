// The pure core is compiled with no platform types (no DOM, no Node, no Workers): the only
// globals it may use are these, which every runtime we target (Node, workerd) provides.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: Uint8Array): string;
}
