// Preloaded into the demo's MCP server (server-everything), which listens on every interface
// (express's app.listen(PORT)): a listener given only a port listens on 127.0.0.1 instead, so
// the server is reachable only through the proxies in front of it, and the demo is told the
// port it got (PORT=0 picks a free one).
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = typeof args[0] === 'string' && /^\d+$/.test(args[0]) ? Number(args[0]) : args[0];
  if (typeof port === 'number' && typeof args[1] !== 'string') args.splice(0, 1, port, '127.0.0.1');
  this.once('listening', () => process.send?.({ demo: 'listening', address: this.address() }));
  return listen.apply(this, args);
};
