// How the API listens, decided once when the server is created: TLS from the configured PEM files,
// which peers' X-Forwarded-For names the client, and how long a client may take.
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import type { FastifyServerOptions } from "fastify";
import { ConfigError, type THttpConfig } from "../lib/config.js";

export type TTransport = {
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  readonly trustedProxies: readonly string[];
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
};

const readPem = async (variable: string, path: string): Promise<Buffer> => {
  try {
    return await readFile(path);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
    );
  }
};

/** Reads the certificate and key the config names; a missing file or a pair that does not fit names its variable and path. */
export const loadTransport = async (http: THttpConfig): Promise<TTransport> => {
  const { tls, ...rest } = http;
  if (tls === undefined) return rest;
  const cert = await readPem("CAREHOST_TLS_CERT", tls.certFile);
  const key = await readPem("CAREHOST_TLS_KEY", tls.keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    // OpenSSL's reason (no start line, key values mismatch) tells what is wrong without quoting the key.
    throw new ConfigError(
      `invalid configuration:\n  CAREHOST_TLS_CERT / CAREHOST_TLS_KEY: ${tls.certFile} and ${tls.keyFile} are not a PEM certificate and its private key (${(error as Error).message})`,
    );
  }
  return { ...rest, tls: { cert, key } };
};

/**
 * The Fastify options at creation. Node checks requestTimeout only every connectionsCheckingInterval
 * (30 s by default), so a 5 s timeout would be enforced anywhere up to 35 s late: the interval is a
 * quarter of the timeout. requestTimeout ends at the last byte of the request; a streamed answer (a
 * run's events) is not cut by it. Fastify's connectionTimeout (a socket idle for that long is
 * destroyed) stays off: a restore's answer may be quiet between its 15 s heartbeats and a long
 * handler may not write at all, and requestTimeout plus keepAliveTimeout already close idle sockets.
 * Neither starts before the TLS handshake ends, so a client that connects and never says hello would
 * hold its socket for Node's 120 s handshakeTimeout: over TLS the handshake gets the request timeout too.
 */
export const transportOptions = (transport: TTransport): FastifyServerOptions & { https?: object } => {
  const listening = {
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, transport.requestTimeoutMs / 4)),
    requestTimeout: transport.requestTimeoutMs,
    headersTimeout: transport.requestTimeoutMs,
  };
  return {
    ...(transport.tls === undefined
      ? { http: listening }
      : { https: { ...transport.tls, ...listening, handshakeTimeout: transport.requestTimeoutMs } }),
    // Only a peer in this list may name the client; anyone else's X-Forwarded-For is ignored (request.ip is the peer).
    trustProxy: transport.trustedProxies.length === 0 ? false : [...transport.trustedProxies],
    requestTimeout: transport.requestTimeoutMs,
    keepAliveTimeout: transport.keepAliveTimeoutMs,
  };
};
