// Size entry: a Worker that frames, decodes and re-encodes one packet with our codec.
import { decodePacket, encodePacket, splitFrames } from "../../../core/mqtt/codec/index";

export default {
  async fetch(request: Request): Promise<Response> {
    const { frames } = splitFrames(new Uint8Array(0), new Uint8Array(await request.arrayBuffer()));
    const r = decodePacket(frames[0] ?? new Uint8Array(0), { protocolVersion: 5 });
    return new Response(r.ok ? encodePacket(r.packet, 5) : r.error.message);
  },
};
