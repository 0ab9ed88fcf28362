import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type TAzurite } from "../../test/azurite.js";
import { startConnectProxy, type TConnectProxy } from "../../test/connect-proxy.js";
import { azureEndpointOf } from "../render/data-tier/data-tier-backup.js";
import {
  filestoreRepositoriesOf,
  filestoreTag,
  restoreFilestore,
  snapshotFilestore,
} from "../runtime/local/local-filestore.js";
import { ensureAzureContainer } from "./azure-container.js";
import type { TAzureRepository } from "./pgbackrest-config.js";
import { EMULATOR_ACCOUNT, rcloneAzureLimitation, resticAzureLocation } from "./rclone-azure.js";
import { resticCheck, resticSnapshots } from "./restic-command.js";

const KEY = "c2VjcmV0LWtleS1vZi10aGUtYWNjb3VudA==";
const repository = (overrides: Partial<TAzureRepository> = {}): TAzureRepository => ({
  name: "offsite",
  type: "azure",
  account: "northwind",
  container: "backups",
  path: "/northwind-health",
  ...overrides,
});

void describe("rclone settings of an Azure filestore repository", () => {
  void it("puts the filestore beside pgBackRest's path, and the key only in rclone's environment", () => {
    const { location, env } = resticAzureLocation(repository(), KEY, "filestore/dedicated-prod");
    assert.equal(location, "rclone:carehost:backups/northwind-health/filestore/dedicated-prod");
    assert.deepEqual(env, {
      RCLONE_CONFIG: "/dev/null",
      RCLONE_CONFIG_CAREHOST_TYPE: "azureblob",
      RCLONE_CONFIG_CAREHOST_ACCOUNT: "northwind",
      RCLONE_CONFIG_CAREHOST_KEY: KEY,
    });
    assert.equal(rcloneAzureLimitation(repository()), undefined);
  });

  void it("gives rclone a sovereign cloud's or private endpoint's host suffix, with its port, and the CA file", () => {
    const sovereign = repository({
      endpoint: { host: "northwind.blob.core.usgovcloudapi.net", port: 443, pathStyle: false },
      caFile: "/etc/carehost/ca.pem",
    });
    assert.equal(rcloneAzureLimitation(sovereign), undefined);
    const { env } = resticAzureLocation(sovereign, KEY, "filestore/dedicated-prod");
    assert.equal(env.RCLONE_CONFIG_CAREHOST_ENDPOINT, "blob.core.usgovcloudapi.net");
    assert.equal(env.RCLONE_CA_CERT, "/etc/carehost/ca.pem");
    const privateEndpoint = repository({
      endpoint: { host: "northwind.privatelink.example", port: 8443, pathStyle: false },
    });
    assert.equal(
      resticAzureLocation(privateEndpoint, KEY, "filestore/dedicated-prod").env.RCLONE_CONFIG_CAREHOST_ENDPOINT,
      "privatelink.example:8443",
    );
  });

  void it("reaches a path-style endpoint (Azurite) through rclone's emulator mode, with the whole URL", () => {
    const azurite = repository({
      account: EMULATOR_ACCOUNT,
      endpoint: { host: "localhost", port: 10000, pathStyle: true },
    });
    assert.equal(rcloneAzureLimitation(azurite), undefined);
    const { env } = resticAzureLocation(azurite, KEY, "filestore/dedicated-prod");
    assert.equal(env.RCLONE_CONFIG_CAREHOST_USE_EMULATOR, "true");
    assert.equal(env.RCLONE_CONFIG_CAREHOST_ENDPOINT, `https://localhost:10000/${EMULATOR_ACCOUNT}`);
  });

  void it("names the repository's endpoint and what to change when rclone 1.60 cannot reach it", () => {
    const customAccount = rcloneAzureLimitation(
      repository({ endpoint: { host: "localhost", port: 10000, pathStyle: true } }),
    );
    assert.match(
      customAccount ?? "",
      /path-style endpoint https:\/\/localhost:10000\/northwind only as Azurite's account devstoreaccount1, not northwind/,
    );
    const foreignHost = rcloneAzureLimitation(
      repository({ endpoint: { host: "storage.internal", port: 443, pathStyle: false } }),
    );
    assert.match(foreignHost ?? "", /host of endpoint https:\/\/storage\.internal does not begin with northwind\./);
    for (const message of [customAccount, foreignHost]) assert.ok(!message?.includes(KEY));
  });
});

void describe("the filestore in an Azure container, through real rclone and restic, against Azurite over HTTPS", () => {
  let home: string;
  let azurite: TAzurite;
  let azure: TAzureRepository;
  let proxy: TConnectProxy;
  const passphrase = "filestore-passphrase-7f3a91";
  const filestoreOf = (cipherPass: string) =>
    filestoreRepositoriesOf(
      {
        repositories: [{ repository: azure, cipherPass, azureKey: AZURITE_KEY }],
        filestorePath: "filestore/dedicated-prod",
      },
      join(home, "cache"),
    )[0]!;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-rclone-"));
    azurite = await startAzurite(join(home, "azurite"));
    azure = {
      ...repository({ account: AZURITE_ACCOUNT, container: "filestore-test" }),
      endpoint: azureEndpointOf({ name: "offsite", account: AZURITE_ACCOUNT, endpoint: azurite.endpoint }),
      caFile: azurite.caFile,
    };
    await ensureAzureContainer(azure, AZURITE_KEY);
    proxy = await startConnectProxy(Number(new URL(azurite.endpoint).port));
  });
  after(async () => {
    await proxy.stop();
    await azurite.stop();
    await rm(home, { recursive: true, force: true });
  });

  void it("snapshots a filestore into the container and restores exactly its files", async () => {
    const source = join(home, "filestore");
    await mkdir(join(source, "a1"), { recursive: true });
    await writeFile(join(source, "a1", "a1b2c3"), randomBytes(4096));
    await writeFile(join(source, "a1", "d4e5f6"), "attachment");
    const snapshot = await snapshotFilestore([filestoreOf(passphrase)], source, {
      organization: "northwind-health",
      environment: "prod",
    });
    assert.equal(snapshot.files, 2);
    assert.equal((await resticSnapshots(filestoreOf(passphrase), filestoreTag("prod"))).length, 1);
    const restored = await restoreFilestore(filestoreOf(passphrase), "prod", undefined, join(home, "restored"));
    assert.equal(restored.files, 2);
    assert.deepEqual((await readdir(join(home, "restored", "a1"))).sort(), ["a1b2c3", "d4e5f6"]);
    assert.equal((await resticCheck(filestoreOf(passphrase))).ok, true);
  });

  void it("names the repository, container and endpoint when restic fails there, and no secret", async () => {
    const wrong = "not-the-passphrase-5c2e08";
    const error = await resticSnapshots(filestoreOf(wrong), filestoreTag("prod")).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof Error, "a wrong passphrase is refused");
    assert.match(
      error.message,
      new RegExp(
        `Azure repository "offsite" \\(container filestore-test, prefix /northwind-health/filestore/dedicated-prod, at ${azurite.endpoint.replaceAll(".", "\\.")}\\)`,
      ),
    );
    for (const secret of [wrong, passphrase, AZURITE_KEY])
      assert.ok(!error.message.includes(secret), "no secret in the message");
  });

  void it("reaches Azure's own form, https://<account>.<suffix>, with the account's shared key", async () => {
    // The endpoint of a sovereign cloud or a private endpoint; the proxy only resolves the name.
    const hosted: TAzureRepository = {
      ...azure,
      endpoint: {
        host: `${AZURITE_ACCOUNT}.localhost`,
        port: Number(new URL(azurite.endpoint).port),
        pathStyle: false,
      },
    };
    assert.equal(rcloneAzureLimitation(hosted), undefined);
    const reached = (key: string) => {
      const filestore = filestoreRepositoriesOf(
        {
          repositories: [{ repository: hosted, cipherPass: passphrase, azureKey: key }],
          filestorePath: "filestore/dedicated-prod",
        },
        join(home, "cache"),
      )[0]!;
      return { ...filestore, env: { ...filestore.env, HTTPS_PROXY: proxy.url } };
    };
    const snapshots = await resticSnapshots(reached(AZURITE_KEY), filestoreTag("prod"));
    assert.equal(
      snapshots.length,
      1,
      "the snapshot written through the path-style endpoint, read through the account's host name",
    );
    assert.ok(
      proxy.tunnels.every((tunnel) => tunnel === `${AZURITE_ACCOUNT}.localhost:${hosted.endpoint!.port}`) &&
        proxy.tunnels.length > 0,
      proxy.tunnels.join(", "),
    );
    const wrongKey = randomBytes(64).toString("base64");
    const error = await resticSnapshots(reached(wrongKey), filestoreTag("prod")).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof Error, "a wrong shared key is refused: this route signs with the key it is given");
    assert.match(
      error.message,
      new RegExp(
        `container filestore-test, prefix /northwind-health/filestore/dedicated-prod, at https://${AZURITE_ACCOUNT}\\.localhost:${hosted.endpoint!.port}\\)`,
      ),
    );
    for (const secret of [wrongKey, AZURITE_KEY, passphrase])
      assert.ok(!error.message.includes(secret), "no secret in the message");
  });
});
