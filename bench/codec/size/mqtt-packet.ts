// Size entry: a Worker that parses and re-generates one packet with mqtt-packet.
import { Buffer } from "buffer";
import mqttPacket from "mqtt-packet";

export default {
  async fetch(request: Request): Promise<Response> {
    let out: Uint8Array = new Uint8Array(0);
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on("packet", (packet) => {
      out = mqttPacket.generate(packet, { protocolVersion: 5 });
    });
    parser.parse(Buffer.from(await request.arrayBuffer()));
    return new Response(out);
  },
};
