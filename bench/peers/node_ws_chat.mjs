// Baseline: the smallest Node `ws` chat server. One room; every text message is sent to every open client,
// sender included. Usage: `node bench/peers/node_ws_chat.mjs [port]` (or PORT); prints `listening <port>`.
import { WebSocket, WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
const wss = new WebSocketServer({ host: "127.0.0.1", port });

wss.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => {
    if (isBinary) return;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: false });
      }
    }
  });
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
