// Idle streams built up one part at a time, so that `node bench/floor/idle.mjs`
// can tell what each part of an open stream costs workerd in memory. The
// variant is the `variant` query parameter of GET /stream:
//
//   connection  no stream: a small answer on a connection the client keeps open
//   pipe        a response body from an IdentityTransformStream, and a
//               keep-alive timer (without one, workerd cancels the request as hung)
//   pipe-hwm    the same with a 1 MiB highWaterMark (the writer's backpressure only)
//   js-stream   a body from a JavaScript ReadableStream instead
//   socket      today's floor: the channel object's hibernatable WebSocket
//               and an IdentityTransformStream, no timer (the socket's read
//               loop keeps the request alive)
//   socket-timer  the same with a keep-alive timer, as edgestream's streams have
//   sockets-only  one request per 100 streams holding 100 sockets each and no
//               response stream: a socket's cost on both of its ends without
//               a request of its own

export class Channel {
  constructor(state) {
    this.state = state;
  }

  async fetch() {
    const pair = new WebSocketPair();
    this.state.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
}

const KEEPALIVE_MS = 15_000;
const SOCKETS_PER_HOLDER = 100;
const encoder = new TextEncoder();
const open = encoder.encode(': open\n\n');
const keepAlive = encoder.encode(': keep-alive\n\n');
const ignore = () => {};
const headers = { 'Content-Type': 'text/event-stream' };

async function attach(env) {
  const channel = env.CHANNEL.get(env.CHANNEL.idFromName('idle'));
  const response = await channel.fetch('https://channel/subscribe', { headers: { Upgrade: 'websocket' } });
  const socket = response.webSocket;
  socket.accept();
  return socket;
}

function pipe(highWaterMark, withTimer) {
  const stream = new IdentityTransformStream(highWaterMark ? { highWaterMark } : undefined);
  const writer = stream.writable.getWriter();
  writer.write(open).catch(ignore);
  if (withTimer) setInterval(() => writer.write(keepAlive).catch(ignore), KEEPALIVE_MS);
  return new Response(stream.readable, { headers });
}

export default {
  async fetch(request, env) {
    switch (new URL(request.url).searchParams.get('variant')) {
      case 'connection':
        return new Response(': open\n\n');
      case 'pipe':
        return pipe(undefined, true);
      case 'pipe-hwm':
        return pipe(1 << 20, true);
      case 'js-stream': {
        let timer;
        const body = new ReadableStream({
          start(controller) {
            controller.enqueue(open);
            timer = setInterval(() => controller.enqueue(keepAlive), KEEPALIVE_MS);
          },
          cancel() {
            clearInterval(timer);
          },
        });
        return new Response(body, { headers });
      }
      case 'socket':
        await attach(env);
        return pipe(undefined, false);
      case 'socket-timer':
        await attach(env);
        return pipe(undefined, true);
      case 'sockets-only': {
        const sockets = [];
        for (let i = 0; i < SOCKETS_PER_HOLDER; i++) sockets.push(await attach(env));
        return pipe(undefined, false);
      }
      default:
        return new Response('unknown variant', { status: 400 });
    }
  },
};
