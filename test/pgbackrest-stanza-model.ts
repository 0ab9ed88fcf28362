// A model of the Stanza of Dalibo's pgBackRest CNPG-I plugin (pgbackrest.dalibo.com/v1), for the
// Kubernetes validator: no npm package publishes it, so its JSON Schema is written here from the
// plugin's API types (internal/pgbackrest/api/stanza.go: Stanza, S3Repository, AzureRepository,
// CipherConfig, Retention), strict about unknown fields so a misspelt one fails like a real CRD's
// structural schema would prune it.
import { Ajv } from "ajv";

const secretKeySelector = {
  type: "object",
  additionalProperties: false,
  required: ["name", "key"],
  properties: { name: { type: "string", minLength: 1 }, key: { type: "string", minLength: 1 } },
};
const retention = {
  type: "object",
  additionalProperties: false,
  properties: {
    archive: { type: "integer", minimum: 1, maximum: 9_999_999 },
    archiveType: { enum: ["full", "diff", "incr"] },
    full: { type: "integer", minimum: 1, maximum: 9_999_999 },
    fullType: { enum: ["count", "time"] },
    diff: { type: "integer", minimum: 1, maximum: 9_999_999 },
    history: { type: "integer", minimum: 0, maximum: 9_999_999 },
  },
};
const cipherConfig = {
  type: "object",
  additionalProperties: false,
  properties: { encryptionPass: secretKeySelector, type: { enum: ["aes-256-cbc"] } },
};
const common = {
  repoPath: { type: "string", minLength: 1 },
  retentionPolicy: retention,
  cipherConfig,
  uriStyle: { enum: ["host", "path"] },
  verifyTLS: { type: "boolean" },
};
const s3Repository = {
  type: "object",
  additionalProperties: false,
  required: ["bucket", "endpoint", "region", "repoPath"],
  properties: {
    ...common,
    bucket: { type: "string", minLength: 1 },
    endpoint: { type: "string", minLength: 1 },
    region: { type: "string", minLength: 1 },
    secretRef: {
      type: "object",
      additionalProperties: false,
      properties: { accessKeyId: secretKeySelector, secretAccessKey: secretKeySelector },
    },
  },
};
const azureRepository = {
  type: "object",
  additionalProperties: false,
  required: ["account", "container", "repoPath"],
  properties: {
    ...common,
    account: { type: "string", minLength: 1 },
    container: { type: "string", minLength: 1 },
    endpoint: { type: "string", minLength: 1 },
    keyType: { enum: ["shared", "sas", "auto"] },
    secretRef: { type: "object", additionalProperties: false, properties: { keyReference: secretKeySelector } },
  },
};
const schema = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "pgbackrest.dalibo.com/v1" },
    kind: { const: "Stanza" },
    metadata: { type: "object", required: ["name"] },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["stanzaConfiguration"],
      properties: {
        stanzaConfiguration: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: {
            name: { type: "string", minLength: 1 },
            s3Repositories: { type: "array", items: s3Repository },
            azureRepositories: { type: "array", items: azureRepository },
            processMax: { type: "integer", minimum: 1 },
            archive: {
              type: "object",
              additionalProperties: false,
              properties: {
                async: { type: "boolean" },
                pushQueueMax: { type: "string" },
                getQueueMax: { type: "string" },
              },
            },
            compressConfig: {
              type: "object",
              additionalProperties: false,
              properties: { type: { enum: ["bz2", "gz", "lz4", "zst"] }, level: { type: "integer" } },
            },
            startFast: { type: "boolean" },
            delta: { type: "boolean" },
            logLevel: { enum: ["error", "warn", "info", "detail", "debug", "trace"] },
            customEnvVar: { type: "object", additionalProperties: { type: "string" } },
          },
        },
      },
    },
  },
} as const;

const validateStanza = new Ajv({ allErrors: true }).compile(schema);

export class Stanza {
  constructor(private readonly data: unknown) {}
  validate(): void {
    if (!validateStanza(this.data)) throw new Error(JSON.stringify(validateStanza.errors));
  }
}
