// Bench Worker for the codec (run by bench/codec/run.mjs). Inside workerd the clock does not
// advance during synchronous execution, so this only does the work and returns a checksum;
// run.mjs times the requests from outside.
//   GET /run?impl=ours|mqtt-packet&op=decode|encode|stream|split5&packet=<name>&version=4|5&n=N
//   GET /check   self-checks (encoders agree, decode checksums agree)
//   GET /cases   the case list
import { allCases, type Impl, type Op, type PacketName, runCase, selfCheck } from "./cases";

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/cases") return Response.json(allCases());
    if (url.pathname === "/check") return Response.json(selfCheck());
    if (url.pathname !== "/run") return new Response("not found", { status: 404 });
    const q = url.searchParams;
    const version = Number(q.get("version") ?? "4");
    if (version !== 4 && version !== 5) return new Response("version must be 4 or 5", { status: 400 });
    try {
      const checksum = runCase(
        q.get("impl") as Impl,
        q.get("op") as Op,
        q.get("packet") as PacketName,
        version,
        Number(q.get("n") ?? "0"),
      );
      return Response.json({ checksum });
    } catch (e) {
      return new Response(String(e), { status: 400 });
    }
  },
};
