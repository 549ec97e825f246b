// The least a relay built like edgestream can do per delivery in workerd: a
// Durable Object that sends each published message to hibernatable
// WebSockets, and a Worker per stream whose JavaScript listener writes every
// message to its response, with no authentication, storage, ids or framing.
// `node bench/floor/run.mjs` measures it; docs/benchmarks.md compares
// edgestream's cost per delivery with this floor, and hub.js is the same
// relay with a channel's streams sharing one socket per isolate.

export class Channel {
  constructor(state) {
    this.state = state;
    this.sends = 0;
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/subscribe') {
      const pair = new WebSocketPair();
      this.state.acceptWebSocket(pair[1]);
      return new Response(null, { status: 101, webSocket: pair[0] });
    }
    if (path === '/stats') {
      const sockets = this.state.getWebSockets().length;
      return Response.json({ streams: sockets, sockets, sends: this.sends });
    }
    const message = new Uint8Array(await request.arrayBuffer());
    for (const socket of this.state.getWebSockets()) {
      socket.send(message);
      this.sends++;
    }
    return new Response(null, { status: 204 });
  }
}

const ignore = () => {};

export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    const channel = env.CHANNEL.get(env.CHANNEL.idFromName('floor'));
    if (path === '/stats') return channel.fetch('https://channel/stats');
    if (path !== '/stream') {
      return channel.fetch('https://channel/publish', { method: 'POST', body: request.body });
    }
    const attached = await channel.fetch('https://channel/subscribe', { headers: { Upgrade: 'websocket' } });
    const socket = attached.webSocket;
    const pipe = new IdentityTransformStream();
    const writer = pipe.writable.getWriter();
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (event) => writer.write(new Uint8Array(event.data)).catch(ignore));
    socket.accept();
    writer.write(new TextEncoder().encode(': open\n\n')).catch(ignore);
    return new Response(pipe.readable, { headers: { 'Content-Type': 'text/event-stream' } });
  },
};
