/**
 * Experiment for issue 15, goal 1: the Node `ws` chat server (`node_ws_chat.mjs`) run by Deno, on `node:http`'s
 * upgrade event, so `ws` owns the framing of every upgraded connection (and writes through Deno's `node:net`).
 *
 * Usage: `deno run -A bench/peers/deno_node_ws_chat.ts [port]`; prints `listening <port>` when ready.
 *
 * @module
 */
import { createServer } from "node:http";
import { WebSocket, WebSocketServer } from "ws";

const port = Number(Deno.args[0] ?? Deno.env.get("PORT") ?? 8000);
const server = createServer((_req, res) => {
  res.writeHead(426, { upgrade: "websocket" });
  res.end("WebSocket only\n");
});
const wss = new WebSocketServer({ noServer: true });
server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});
wss.on("connection", (socket: WebSocket) => {
  socket.on("message", (data: Uint8Array, isBinary: boolean) => {
    if (isBinary) return;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    }
  });
});
server.listen(port, "127.0.0.1", () => {
  const addr = server.address();
  console.log(`listening ${typeof addr === "object" && addr ? addr.port : port}`);
});
