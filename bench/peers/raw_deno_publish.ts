/**
 * Baseline: the smallest Deno publish fan-out. Sockets on any path subscribe to everything; `POST /api/publish`
 * with `{"topic","data"}` sends one encoded frame to every socket with a loop of `send()` (no auth, no topics,
 * no storage), then answers `{"delivered": n}`; `{"messages": [{"topic","data"}…]}` does that for each item on
 * the sockets' topic `bench` (every socket is told it follows `bench`; other topics have no subscribers).
 *
 * Usage: `deno run --allow-net --allow-env=PORT bench/peers/raw_deno_publish.ts [port]` (or `PORT`); prints
 * `listening <port>` when ready.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? Deno.env.get("PORT") ?? 8000);
const sockets = new Set<WebSocket>();

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: (addr) => console.log(`listening ${addr.port}`),
}, async (req) => {
  if (req.method === "POST") {
    const body = await req.json();
    const items: { topic: string; data: unknown }[] = body.messages ?? [body];
    let delivered = 0;
    for (const { topic, data } of items) {
      // A single publication keeps the original behaviour: it reaches every socket, whatever its topic.
      if (body.messages && topic !== "bench") continue;
      const frame = JSON.stringify({ type: "publication", topic, data });
      for (const s of sockets) s.send(frame);
      delivered += sockets.size;
    }
    return Response.json({ delivered });
  }
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", { status: 426, headers: { upgrade: "websocket" } });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onopen = () => {
    sockets.add(socket);
    socket.send(JSON.stringify({ type: "subscribed", topic: "bench" }));
  };
  socket.onclose = () => sockets.delete(socket);
  return response;
});
