import { migrations } from "./migrations/index.js";
import { openPgliteClient } from "./pglite-client.js";
import { openPostgresClient } from "./postgres-client.js";
import { migrate } from "./store-migrate.js";
import type { TSqlClient, TStoreConfig, TStoreKind } from "./store-types.js";

const openers: Record<TStoreKind, (config: TStoreConfig) => Promise<TSqlClient>> = {
  pglite: (config) => openPgliteClient((config as Extract<TStoreConfig, { kind: "pglite" }>).dataDir),
  postgres: (config) => {
    const { url, poolSize } = config as Extract<TStoreConfig, { kind: "postgres" }>;
    return openPostgresClient(url, poolSize);
  },
};

/** Opens the control-plane database and brings its schema up to date before anyone uses it. */
export const openStore = async (config: TStoreConfig): Promise<TSqlClient> => {
  const client = await openers[config.kind](config);
  try {
    await migrate(client, migrations);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
};
