/**
 * Baseline: the smallest Deno echo server. Every frame goes back to its sender unchanged.
 *
 * Usage: `deno run --allow-net --allow-env=PORT bench/peers/raw_deno_echo.ts [port]` (or `PORT`); prints
 * `listening <port>` when ready.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? Deno.env.get("PORT") ?? 8000);

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
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
