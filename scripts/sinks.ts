import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message the local SMTP server accepted. */
export interface ReceivedMail {
  messageId: string;
  to: string;
  subject: string;
  text: string;
}

/** What the webhook receiver saw: every request, and the deliveries it recorded once per idempotency key. */
export interface WebhookLog {
  requests: { key: string; signatureValid: boolean; status: number; body: string }[];
  deliveries: Map<string, unknown>;
}

export interface Sinks {
  smtpUrl: string;
  webhookUrl: string;
  mail: ReceivedMail[];
  webhook: WebhookLog;
  stop(): Promise<void>;
}

export interface SinkOptions {
  /** Webhook secret the receiver verifies signatures with. */
  secret: string;
  /** Where accepted messages are also written as files (.eml and .json); none when omitted. */
  dir?: string;
  /** Override the receiver's answer to the n-th request (1-based) with this key: a status code, or 'hang'. */
  webhookAnswer?: (n: number, key: string) => number | 'hang' | undefined;
  /** Override the SMTP server's answer for the n-th message: an SMTP reply code. */
  smtpAnswer?: (n: number) => number | undefined;
}

/**
 * Local delivery endpoints on loopback: an SMTP server (smtp-server) and a webhook receiver that follows the receiver
 * contract — verify `X-Edlake-Signature` (HMAC-SHA256 of the raw body), record each `Idempotency-Key` once, answer 2xx
 * to repeats. The demo run and the tests deliver to these when no real endpoints are configured.
 */
export async function startSinks(o: SinkOptions): Promise<Sinks> {
  const mail: ReceivedMail[] = [];
  const webhook: WebhookLog = { requests: [], deliveries: new Map() };
  if (o.dir) {
    mkdirSync(join(o.dir, 'mail'), { recursive: true });
    mkdirSync(join(o.dir, 'webhook'), { recursive: true });
  }
  let mails = 0;
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const n = ++mails;
        const code = o.smtpAnswer?.(n);
        if (code) {
          const err = Object.assign(new Error(`refused (${code})`), { responseCode: code });
          return callback(err);
        }
        const raw = Buffer.concat(chunks);
        simpleParser(raw)
          .then((m) => {
            const rec = {
              messageId: m.messageId ?? '',
              to: Array.isArray(m.to) ? (m.to[0]?.text ?? '') : (m.to?.text ?? ''),
              subject: m.subject ?? '',
              text: m.text ?? '',
            };
            mail.push(rec);
            if (o.dir) writeFileSync(join(o.dir, 'mail', `${mail.length}.eml`), raw);
            callback();
          })
          .catch((err: Error) => callback(err));
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const smtpPort = (smtp.server.address() as AddressInfo).port;

  const perKey = new Map<string, number>();
  const hanging = new Set<ServerResponse>();
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const key = String(req.headers['idempotency-key'] ?? '');
      const n = (perKey.get(key) ?? 0) + 1;
      perKey.set(key, n);
      const given = String(req.headers['x-edlake-signature'] ?? '');
      const expected = `sha256=${createHmac('sha256', o.secret).update(body).digest('hex')}`;
      const signatureValid =
        given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
      const forced = o.webhookAnswer?.(n, key);
      if (forced === 'hang') {
        webhook.requests.push({ key, signatureValid, status: 0, body });
        hanging.add(res);
        return;
      }
      let status = forced ?? (signatureValid ? (key ? 200 : 400) : 401);
      if (status === 200 && webhook.deliveries.has(key))
        status = 200; // a repeat: acknowledged, not recorded again
      else if (status === 200) {
        webhook.deliveries.set(key, JSON.parse(body));
        if (o.dir) writeFileSync(join(o.dir, 'webhook', `${webhook.deliveries.size}.json`), body);
      }
      webhook.requests.push({ key, signatureValid, status, body });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: status < 300 }));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const httpPort = (http.address() as AddressInfo).port;

  return {
    smtpUrl: `smtp://127.0.0.1:${smtpPort}`,
    webhookUrl: `http://127.0.0.1:${httpPort}/edlake`,
    mail,
    webhook,
    async stop() {
      for (const r of hanging) r.destroy();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    },
  };
}
