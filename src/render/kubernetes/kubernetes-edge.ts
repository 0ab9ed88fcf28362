// How users reach the environment: a Traefik IngressRoute over TLS only (minimum TLS 1.2, strong
// ciphers), HSTS and security headers, a rate limit, the spec's IP allow list, /websocket routed to
// Odoo's gevent port, and Odoo's database manager refused outright. Plus the Argo CD Application
// that syncs this directory. Traefik's access log is a static setting of the controller (enabled
// in carehost's controller values), not of a route.
import type { TKubernetesObject, TRenderContext } from "./kubernetes-common.js";
import { DEFAULT_GITOPS_REPOSITORY, ODOO_GEVENT_PORT, ODOO_HTTP_PORT, metadata } from "./kubernetes-common.js";

const middleware = (context: TRenderContext, name: string, spec: Record<string, unknown>): TKubernetesObject => ({
  apiVersion: "traefik.io/v1alpha1",
  kind: "Middleware",
  metadata: metadata(context, name, "ingress"),
  spec,
});

/** TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are not configurable and all strong. */
const CIPHER_SUITES = [
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

export function edgeObjects(context: TRenderContext): TKubernetesObject[] {
  const { environment } = context;
  const hosts = environment.ingress.hostnames.map((host) => `Host(\`${host}\`)`).join(" || ");
  const ref = (name: string) => ({ name, namespace: context.namespace });
  const common = [ref("security-headers"), ref("allow-list"), ref("rate-limit")];
  return [
    middleware(context, "security-headers", {
      headers: {
        stsSeconds: 63072000,
        stsIncludeSubdomains: true,
        stsPreload: true,
        forceSTSHeader: true,
        frameDeny: true,
        contentTypeNosniff: true,
        browserXssFilter: true,
        referrerPolicy: "strict-origin-when-cross-origin",
        customResponseHeaders: { Server: "" },
      },
    }),
    middleware(context, "allow-list", { ipAllowList: { sourceRange: [...environment.ingress.allowedCidrs] } }),
    middleware(context, "rate-limit", { rateLimit: { average: 50, burst: 100, period: "1s" } }),
    // An allow list no client can match: Traefik answers 403 to every request for the database manager.
    middleware(context, "refuse-database-manager", { ipAllowList: { sourceRange: ["255.255.255.255/32"] } }),
    {
      apiVersion: "traefik.io/v1alpha1",
      kind: "TLSOption",
      metadata: metadata(context, "modern-tls", "ingress"),
      spec: { minVersion: "VersionTLS12", cipherSuites: CIPHER_SUITES, sniStrict: true },
    },
    {
      apiVersion: "traefik.io/v1alpha1",
      kind: "IngressRoute",
      metadata: metadata(context, "odoo", "ingress"),
      spec: {
        entryPoints: ["websecure"],
        routes: [
          {
            kind: "Rule",
            match: `(${hosts}) && PathPrefix(\`/web/database\`)`,
            priority: 1000,
            middlewares: [ref("refuse-database-manager")],
            services: [{ name: "odoo-http", port: ODOO_HTTP_PORT }],
          },
          {
            kind: "Rule",
            match: `(${hosts}) && PathPrefix(\`/websocket\`)`,
            priority: 500,
            middlewares: common,
            services: [{ name: "odoo-websocket", port: ODOO_GEVENT_PORT }],
          },
          {
            kind: "Rule",
            match: `(${hosts})`,
            priority: 100,
            middlewares: common,
            services: [{ name: "odoo-http", port: ODOO_HTTP_PORT }],
          },
        ],
        tls: { secretName: "odoo-tls", options: { name: "modern-tls", namespace: context.namespace } },
      },
    },
    {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "Application",
      metadata: {
        name: context.namespace,
        namespace: "argocd",
        labels: metadata(context, context.namespace, "gitops").labels,
      },
      spec: {
        project: "default",
        source: {
          repoURL: context.organization.gitops?.repository ?? DEFAULT_GITOPS_REPOSITORY,
          targetRevision: context.organization.gitops?.targetRevision ?? "main",
          path: `environments/${environment.name}`,
        },
        destination: { server: "https://kubernetes.default.svc", namespace: context.namespace },
        // Hand changes in the cluster are reverted; removals in Git are applied (prune).
        syncPolicy: { automated: { prune: true, selfHeal: true }, syncOptions: ["ServerSideApply=true"] },
      },
    },
  ];
}
