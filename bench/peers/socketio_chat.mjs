// Baseline: the smallest Socket.IO chat server, WebSocket transport only. Every client joins one room; each
// "msg" event is emitted to the room, sender included. Usage: `node bench/peers/socketio_chat.mjs [port]`
// (or PORT); prints `listening <port>`.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
});

io.on("connection", (socket) => {
  socket.join("chat");
  socket.on("msg", (text) => io.to("chat").emit("msg", text));
});
httpServer.listen(
  port,
  "127.0.0.1",
  () => console.log(`listening ${httpServer.address().port}`),
);
