import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { Config } from '../../config/index.js';
import type { ObjectStore } from '../../lake/store.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { FIRST_NAME } from './compose.js';

/** One message on its way: the idempotency key travels with it on every channel. */
export interface Delivery {
  idempotencyKey: string;
  interventionId: string;
  studentKey: string;
  kind: string;
  course: string | null;
  subject: string;
  body: string;
}

export interface DeliveryReceipt {
  channel: string;
  /** What the far side said: SMTP response, HTTP status, outbox key. */
  detail: string;
}

/** Header names of the webhook contract (see the README's receiver contract). */
export const WEBHOOK_HEADERS = { key: 'idempotency-key', signature: 'x-edlake-signature' } as const;

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * In-app outbox: one object per idempotency key under `interventions/outbox/<student_key>/`. Writing the same key again
 * replaces the same object, so the outbox holds a message exactly once however often delivery is retried. The app
 * shows the body with the signed-in student's own first name in the placeholder.
 */
export async function deliverOutbox(store: ObjectStore, d: Delivery, at: string): Promise<DeliveryReceipt> {
  const key = `interventions/outbox/${d.studentKey}/${d.idempotencyKey}.json`;
  await store.putBytes(
    key,
    JSON.stringify({
      idempotency_key: d.idempotencyKey,
      intervention_id: d.interventionId,
      student_key: d.studentKey,
      kind: d.kind,
      course: d.course,
      subject: d.subject,
      body: d.body,
      created_at: at,
    }),
  );
  return { channel: 'outbox', detail: key };
}

/**
 * Signed webhook: JSON body, HMAC-SHA256 of the exact body in `X-Edlake-Signature`, the idempotency key in
 * `Idempotency-Key`. 2xx is delivered; 408, 429 and 5xx and timeouts are retried; any other 4xx cannot succeed.
 */
export async function deliverWebhook(config: Config, d: Delivery): Promise<DeliveryReceipt> {
  const { url, secret } = config.interventions.webhook;
  if (!url || !secret)
    throw nonRetryable(
      ErrorType.MissingInput,
      'the webhook channel is not configured: set EDLAKE_WEBHOOK_URL and EDLAKE_WEBHOOK_SECRET',
    );
  const body = JSON.stringify({
    idempotency_key: d.idempotencyKey,
    intervention_id: d.interventionId,
    student_key: d.studentKey,
    kind: d.kind,
    course: d.course,
    subject: d.subject,
    message: d.body,
  });
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [WEBHOOK_HEADERS.key]: d.idempotencyKey,
        [WEBHOOK_HEADERS.signature]: signBody(secret, body),
      },
      body,
      signal: AbortSignal.timeout(config.interventions.delivery.timeoutMs),
    });
  } catch (err) {
    const e = err as Error;
    throw new Error(`webhook ${new URL(url).host}: ${e.name === 'TimeoutError' ? 'timed out' : e.message}`);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.ok) return { channel: 'webhook', detail: `HTTP ${res.status}` };
  if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
    throw nonRetryable(
      ErrorType.DeliveryRejected,
      `webhook ${new URL(url).host} rejected the delivery: HTTP ${res.status}`,
    );
  }
  throw new Error(`webhook ${new URL(url).host} answered HTTP ${res.status}; retrying`);
}

/**
 * Email over SMTP (nodemailer). The idempotency key is the Message-ID (and an `Idempotency-Key` header), so a repeat
 * is recognisable to mail systems. 5xx replies cannot succeed; connection errors and 4xx replies are retried.
 */
export async function deliverEmail(
  config: Config,
  d: Delivery,
  to: { email: string; firstName: string },
): Promise<DeliveryReceipt> {
  const e = config.interventions.email;
  if (!e.smtpUrl)
    throw nonRetryable(ErrorType.MissingInput, 'the email channel is not configured: set EDLAKE_SMTP_URL');
  const u = new URL(e.smtpUrl);
  const transport = nodemailer.createTransport({
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'smtps:' ? 465 : 25)),
    secure: u.protocol === 'smtps:',
    ...(e.user ? { auth: { user: e.user, pass: e.password ?? '' } } : {}),
    connectionTimeout: config.interventions.delivery.timeoutMs,
    greetingTimeout: config.interventions.delivery.timeoutMs,
    socketTimeout: config.interventions.delivery.timeoutMs,
    tls: { rejectUnauthorized: u.searchParams.get('tls') !== 'insecure' },
  });
  try {
    const info = await transport.sendMail({
      from: e.from,
      to: to.email,
      subject: d.subject,
      text: d.body.split(FIRST_NAME).join(to.firstName),
      messageId: `<${d.idempotencyKey}@edlake>`,
      headers: { 'Idempotency-Key': d.idempotencyKey },
    });
    return { channel: 'email', detail: String(info.response ?? 'accepted') };
  } catch (err) {
    const code = (err as { responseCode?: number }).responseCode;
    // The message names the server and the reply only: never the recipient's address.
    const msg = `SMTP ${u.hostname}:${u.port}: ${code ? `reply ${code}` : (err as Error).message.split('\n')[0]}`;
    if (code && code >= 500) throw nonRetryable(ErrorType.DeliveryRejected, msg);
    throw new Error(msg);
  } finally {
    transport.close();
  }
}
