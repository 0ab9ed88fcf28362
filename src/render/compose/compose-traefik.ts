// Traefik, the only service with published ports. Configured through its file provider rather
// than Docker labels: the label provider needs the Docker socket, which is root on the host.
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import { ODOO_GEVENT_PORT, ODOO_HTTP_PORT } from "./compose-odoo.js";
import { SECRET_NAMES } from "./compose-secrets.js";

export const TRAEFIK_PATHS = { static: "/etc/traefik/traefik.yaml", dynamic: "/etc/traefik/dynamic.yaml" } as const;

/** Unprivileged ports inside the container (no CAP_NET_BIND_SERVICE); published as 80 and 443. */
export const TRAEFIK_PORTS = { web: 8080, websecure: 8443, ping: 8082 } as const;

/** Paths never routed to Odoo: the database manager (guarded only by the master password, ODOO.md). */
export const REFUSED_PATH_PREFIXES = ["/web/database"] as const;

/** Security headers on every response; HSTS for a year, as HIPAA's transmission security expects TLS only. */
export const HSTS_SECONDS = 31_536_000;

// ECDHE with AEAD only for TLS 1.2; TLS 1.3 suites are fixed by Go and all acceptable.
const TLS12_CIPHER_SUITES = [
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
] as const;

export function traefikStaticConfig(): Record<string, unknown> {
  return {
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    entryPoints: {
      // Port 80 only redirects: no router is attached to it.
      web: {
        address: `:${TRAEFIK_PORTS.web}`,
        http: { redirections: { entryPoint: { to: ":443", scheme: "https", permanent: true } } },
      },
      websecure: {
        address: `:${TRAEFIK_PORTS.websecure}`,
        http: { tls: { options: "default" } },
        // Traefik is the edge: client-sent X-Forwarded-* are overwritten, never trusted.
        forwardedHeaders: { insecure: false },
      },
      ping: { address: `:${TRAEFIK_PORTS.ping}` },
    },
    ping: { entryPoint: "ping" },
    providers: { file: { filename: TRAEFIK_PATHS.dynamic, watch: false } },
    api: { dashboard: false },
    log: { level: "INFO", format: "json" },
    // Access logs are part of the audit trail; headers are dropped because they carry session cookies.
    accessLog: { format: "json", fields: { defaultMode: "keep", headers: { defaultMode: "drop" } } },
  };
}

const hostRule = (hostnames: readonly string[]): string => {
  const hosts = hostnames.map((hostname) => `Host(\`${hostname}\`)`);
  return hosts.length === 1 ? (hosts[0] as string) : `(${hosts.join(" || ")})`;
};

export function traefikDynamicConfig(environment: TEnvironmentSpec): Record<string, unknown> {
  const hosts = hostRule(environment.ingress.hostnames);
  const refused = REFUSED_PATH_PREFIXES.map((prefix) => `!PathPrefix(\`${prefix}\`)`).join(" && ");
  // Every router carries the same guards; a request for a refused path matches no router and gets 404.
  const guards = ["allow-list", "security-headers", "rate-limit"];
  const router = (rule: string, service: string, priority: number, middlewares: readonly string[] = guards) => ({
    rule,
    entryPoints: ["websecure"],
    middlewares: [...middlewares],
    service,
    priority,
    tls: {},
  });
  return {
    http: {
      routers: {
        "odoo-websocket": router(`${hosts} && PathPrefix(\`/websocket\`) && ${refused}`, "odoo-gevent", 30),
        // Password guessing is slowed on the login form beyond the general limit.
        "odoo-login": router(`${hosts} && Path(\`/web/login\`) && ${refused}`, "odoo-http", 20, [
          ...guards,
          "login-rate-limit",
        ]),
        odoo: router(`${hosts} && ${refused}`, "odoo-http", 10),
      },
      middlewares: {
        "allow-list": { ipAllowList: { sourceRange: [...environment.ingress.allowedCidrs] } },
        "security-headers": {
          headers: {
            stsSeconds: HSTS_SECONDS,
            stsIncludeSubdomains: true,
            forceSTSHeader: true,
            contentTypeNosniff: true,
            // Odoo frames its own pages (website editor, report previews), never others'.
            customFrameOptionsValue: "SAMEORIGIN",
            referrerPolicy: "strict-origin-when-cross-origin",
            permissionsPolicy: "camera=(self), microphone=(self), geolocation=(), payment=()",
            customResponseHeaders: { Server: "", "X-Powered-By": "" },
          },
        },
        // Per client address; generous because the web client loads many assets per page.
        "rate-limit": { rateLimit: { average: 100, period: "1s", burst: 300 } },
        "login-rate-limit": { rateLimit: { average: 10, period: "1m", burst: 10 } },
      },
      services: {
        "odoo-http": {
          loadBalancer: { passHostHeader: true, servers: [{ url: `http://odoo-web:${ODOO_HTTP_PORT}` }] },
        },
        "odoo-gevent": {
          loadBalancer: { passHostHeader: true, servers: [{ url: `http://odoo-web:${ODOO_GEVENT_PORT}` }] },
        },
      },
    },
    tls: {
      options: {
        default: { minVersion: "VersionTLS12", cipherSuites: [...TLS12_CIPHER_SUITES], sniStrict: true },
      },
      certificates: [
        {
          certFile: `/run/secrets/${SECRET_NAMES.ingressCertificate}`,
          keyFile: `/run/secrets/${SECRET_NAMES.ingressKey}`,
        },
      ],
      stores: {
        default: {
          defaultCertificate: {
            certFile: `/run/secrets/${SECRET_NAMES.ingressCertificate}`,
            keyFile: `/run/secrets/${SECRET_NAMES.ingressKey}`,
          },
        },
      },
    },
  };
}
