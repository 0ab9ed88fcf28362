// Sends what alerts owe their routes: each delivery row claimed for a lease, sent by its kind's
// sender, and recorded delivered, or retried later with a growing pause, until after its last
// attempt it is recorded failed and audited: a notification is never silently dropped.
//
// Senders (one per route kind, picked from a Record): a sender that resolves has handed the
// notification to the receiver (a 2xx answer, an accepted SMTP message); one that throws has not,
// and the error's message (never a secret) is recorded on the row.
import type { Transporter } from "nodemailer";
import type { TAuditLog } from "../audit/audit-log.js";
import { systemContext } from "../lib/request-context.js";
import type { TSqlClient } from "../store/store-types.js";
import { alertStore } from "./monitor-alert-store.js";
import { alertmanagerAlerts, emailMessage, webhookPayload } from "./monitor-alert-routing.js";
import type { TAlert, TAlertEvent, TDelivery, TDestination, TRouteKind } from "./monitor-alert-types.js";

/** A delivery's destination as the audit log shows it: a URL's origin, an email address as it is. */
const destinationShown = (destination: string): string => {
  try {
    return new URL(destination).origin;
  } catch {
    return destination;
  }
};

export type TAlertSender = (alert: TAlert, event: TAlertEvent, destination: string) => Promise<void>;

const TIMEOUT_MS = 10_000;

const postJson = async (url: string, body: unknown): Promise<void> => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
    redirect: "error",
  });
  if (!response.ok)
    throw new Error(`${new URL(url).origin} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
};

/** The three senders: Alertmanager's webhook payload, Alertmanager's own API, and email over SMTP. */
export const alertSenders = ({
  externalURL,
  mail,
}: {
  externalURL: () => string;
  /** The SMTP transport and sender address; undefined when no SMTP server is configured. */
  mail: (() => Promise<{ transport: Pick<Transporter, "sendMail">; from: string }>) | undefined;
}): Record<TRouteKind, TAlertSender> => ({
  webhook: (alert, event, url) =>
    postJson(url, webhookPayload(alert, event, { receiver: "carehost", externalURL: externalURL() })),
  alertmanager: (alert, event, url) =>
    postJson(`${url.replace(/\/+$/, "")}/api/v2/alerts`, alertmanagerAlerts(alert, event, externalURL())),
  email: async (alert, event, addresses) => {
    if (mail === undefined)
      throw new Error("no SMTP server is configured (CAREHOST_SMTP_URL): the email route cannot be sent");
    const { transport, from } = await mail();
    const message = emailMessage(alert, event, externalURL());
    await transport.sendMail({ from, to: addresses.split(","), subject: message.subject, text: message.text });
  },
});

type TAlertDeliveryDeps = {
  db: Pick<TSqlClient, "transaction" | "query">;
  log: Pick<TAuditLog, "recordChange">;
  senders: Record<TRouteKind, TAlertSender>;
  /** Attempts before a delivery is recorded failed. */
  maxAttempts?: number;
  /** The pause after the first failed attempt; doubled after each, at most `maxRetryMs`. */
  retryBaseMs?: number;
  maxRetryMs?: number;
  now?: () => Date;
  onError: (error: unknown) => void;
};

const LEASE_MS = 60_000;
const RESEND_MS = 60_000;

export const alertDeliveryFactory = ({
  db,
  log,
  senders,
  maxAttempts = 8,
  retryBaseMs = 5_000,
  maxRetryMs = 600_000,
  now = () => new Date(),
  onError,
}: TAlertDeliveryDeps) => {
  let pass: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  const attempt = async (delivery: TDelivery): Promise<void> => {
    const alert = await alertStore.get(db, delivery.alertId);
    if (alert === undefined) return;
    try {
      await senders[delivery.kind](alert, delivery.event, delivery.destination);
      await alertStore.delivered(db, delivery.id, now());
    } catch (error) {
      const reason = (error instanceof Error ? error.message : String(error)).slice(0, 500);
      const attempts = delivery.attempts + 1;
      if (attempts < maxAttempts) {
        const pause = Math.min(maxRetryMs, retryBaseMs * 2 ** (attempts - 1));
        await alertStore.attemptFailed(db, delivery.id, reason, new Date(now().getTime() + pause));
        return;
      }
      await log.recordChange(systemContext("alert-delivery"), async (tx) => {
        await alertStore.attemptFailed(tx, delivery.id, reason, null);
        return {
          result: undefined,
          events: [
            {
              type: "alert.delivery_failed",
              outcome: "failure",
              target: `alert:${alert.id}`,
              payload: {
                delivery: delivery.id,
                alert: alert.id,
                event: delivery.event,
                route: delivery.kind,
                // A webhook URL can carry its credential in its path: the log keeps where, not how.
                destination: destinationShown(delivery.destination),
                attempts,
                reason,
              },
            },
          ],
        };
      });
    }
  };

  const deliverDue = async (): Promise<void> => {
    for (;;) {
      const due = await db.transaction((tx) => alertStore.claimDue(tx, now(), LEASE_MS, 50));
      if (due.length === 0) return;
      // In order: a resolution never overtakes the firing it ends at the same receiver.
      for (const delivery of due) await attempt(delivery);
    }
  };

  /** One pass over what is due; a kick during a pass runs another after it. */
  const kick = (): Promise<void> => {
    if (pass !== undefined) {
      again = true;
      return pass;
    }
    pass = deliverDue()
      .catch(onError)
      .finally(() => {
        pass = undefined;
        if (again) {
          again = false;
          void kick();
        }
      });
    return pass;
  };

  // Alertmanager ends an alert it has not heard of for its resolve_timeout (5m by default), as it
  // would one Prometheus stopped sending: an alert still firing is posted again each minute.
  const lastResent = new Map<string, number>();
  const resendFiring = async (active: readonly { alert: TAlert; destinations: readonly TDestination[] }[]) => {
    const at = now().getTime();
    for (const { alert, destinations } of active)
      for (const destination of destinations.filter((item) => item.kind === "alertmanager")) {
        const key = `${alert.id} ${destination.destination}`;
        if (at - (lastResent.get(key) ?? 0) < RESEND_MS) continue;
        lastResent.set(key, at);
        await senders.alertmanager(alert, "firing", destination.destination).catch(onError);
      }
  };

  return {
    kick,
    resendFiring,
    /** Retries come due without a new round: looked for every `intervalMs`. */
    start: (intervalMs: number) => {
      timer = setInterval(() => void kick(), intervalMs);
      timer.unref();
    },
    stop: async () => {
      if (timer !== undefined) clearInterval(timer);
      await pass;
    },
  };
};

export type TAlertDelivery = ReturnType<typeof alertDeliveryFactory>;
