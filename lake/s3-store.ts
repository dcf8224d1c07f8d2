import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  assertSafeKey,
  FILE_CHUNK,
  ObjectNotFoundError,
  type ObjectInfo,
  type ObjectStore,
  StoreUnavailableError,
} from './store.js';

export interface S3StoreOptions {
  bucket: string;
  prefix: string;
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  partSizeMb: number;
  /** Local folder where objects are staged for engines that read files. */
  cacheDir: string;
}

function isNotFound(err: unknown): boolean {
  if (err instanceof S3ServiceException) {
    return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404;
  }
  return false;
}

function isUnreachable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; $metadata?: unknown };
  return (
    ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH'].includes(e?.code ?? '') ||
    e?.name === 'TimeoutError'
  );
}

/**
 * The lake on any S3-compatible store (MinIO, AWS S3, others) through @aws-sdk/client-s3. Uploads are multipart
 * streams (lib-storage) with a bounded part size and queue, downloads are piped to disk, so memory stays flat.
 */
export class S3ObjectStore implements ObjectStore {
  readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly opts: S3StoreOptions) {
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      maxAttempts: 5,
      requestHandler: { connectionTimeout: 5000, requestTimeout: 120_000 },
    });
    this.prefix = opts.prefix ? opts.prefix.replace(/\/?$/, '/') : '';
  }

  private key(key: string): string {
    assertSafeKey(key);
    return this.prefix + key;
  }

  uri(key: string): string {
    return `s3://${this.opts.bucket}/${this.key(key)}`;
  }

  async ensureReady(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
    } catch (err) {
      if (isUnreachable(err)) {
        throw new StoreUnavailableError(
          `object store at ${this.opts.endpoint ?? 'the AWS S3 endpoint'} is unreachable (${(err as Error).message || (err as Error).name})`,
        );
      }
      if (!isNotFound(err)) throw err;
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.opts.bucket }));
      } catch (createErr) {
        const name = (createErr as Error).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw createErr;
      }
    }
  }

  async putStream(key: string, body: Readable): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.opts.bucket, Key: this.key(key), Body: body },
      partSize: this.opts.partSizeMb * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  putFile(key: string, localPath: string): Promise<void> {
    return this.putStream(key, createReadStream(localPath, { highWaterMark: FILE_CHUNK }));
  }

  putBytes(key: string, body: Uint8Array | string): Promise<void> {
    return this.putStream(key, Readable.from([typeof body === 'string' ? Buffer.from(body) : Buffer.from(body)]));
  }

  async getBytes(key: string): Promise<Buffer | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async getStream(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
  }

  async getFile(key: string, localPath: string): Promise<number> {
    await mkdir(dirname(localPath), { recursive: true });
    const tmp = `${localPath}.tmp-${randomUUID()}`;
    try {
      await pipeline(await this.getStream(key), createWriteStream(tmp));
      await rename(tmp, localPath);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return (await stat(localPath)).size;
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) {
        out.push({
          key: o.Key!.slice(this.prefix.length),
          size: o.Size ?? 0,
          lastModified: o.LastModified ?? new Date(0),
        });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async listPrefixes(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.opts.bucket,
          Prefix: this.prefix + prefix,
          Delimiter: '/',
          ContinuationToken: token,
        }),
      );
      for (const p of res.CommonPrefixes ?? []) out.push(p.Prefix!.slice(this.prefix.length));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.opts.bucket,
          Delete: { Objects: batch.map((k) => ({ Key: this.key(k) })), Quiet: true },
        }),
      );
    }
  }

  async localCopy(key: string): Promise<string> {
    let head;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.key(key) }));
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
    const path = join(this.opts.cacheDir, this.opts.bucket, ...this.key(key).split('/'));
    const tag = `${head.ETag ?? ''}:${String(head.ContentLength ?? -1)}`;
    const cached = await readFile(`${path}.etag`, 'utf8').catch(() => null);
    if (cached === tag && (await stat(path).catch(() => null))) return path;
    await this.getFile(key, path);
    await writeFile(`${path}.etag`, tag);
    return path;
  }
}
