/**
 * Baseline: the smallest Deno chat server. One room; every text frame is sent to every open socket, sender
 * included, with a plain loop of `send()` (no queue, no backpressure, no storage).
 *
 * Usage: `deno run --allow-net --allow-env=PORT bench/peers/raw_deno_chat.ts [port]` (or `PORT`); prints
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
}, (req) => {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", {
      status: 426,
      headers: { upgrade: "websocket" },
    });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onopen = () => sockets.add(socket);
  socket.onclose = () => sockets.delete(socket);
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") return;
    for (const s of sockets) s.send(event.data);
  };
  return response;
});
