// An HTTP CONNECT proxy that tunnels every request to one loopback port. It stands in for DNS:
// rclone (Go) does not resolve <account>.localhost, and the form https://<account>.<suffix> that
// Azure, sovereign clouds and private endpoints use can only be tried against Azurite by name.
// Go sends a proxied HTTPS request as CONNECT host:port, then TLS end to end, so the certificate
// is still checked against the name asked for.
import { connect, createServer, type Socket } from "node:net";

export type TConnectProxy = { readonly url: string; readonly tunnels: string[]; stop(): Promise<void> };

export async function startConnectProxy(targetPort: number): Promise<TConnectProxy> {
  const tunnels: string[] = [];
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.on("close", () => open.delete(client));
    client.on("error", () => client.destroy());
    client.once("data", (head: Buffer) => {
      const requestLine = head.toString("latin1").split("\r\n")[0] ?? "";
      const target = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(requestLine)?.[1];
      if (target === undefined) {
        client.end("HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
      }
      tunnels.push(target);
      const upstream = connect(targetPort, "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client);
        client.pipe(upstream);
      });
      open.add(upstream);
      upstream.on("close", () => open.delete(upstream));
      upstream.on("error", () => client.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the CONNECT proxy has no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    tunnels,
    stop: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
