// Read access to the bucket the devices upload cloud recordings to: the credentials the admin
// loads (kept in this page only; the secret as a non-extractable WebCrypto key), the
// path-style URL of an object, its presigned GET, and the recording folder a device's
// `location` names. Must not touch the page or MQTT.

import { type SigningKey, importSecret, presignGet } from "./presign";

export interface BucketForm {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secret: string;
}

/** A problem with the credentials or with a read, as a sentence for the admin. */
export class BucketError extends Error {}

/** How long a presigned URL is valid: each request is signed when it is made. */
const PRESIGN_SECONDS = 600;
/** S3 bucket names (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class Bucket {
  private constructor(
    readonly endpoint: URL,
    readonly name: string,
    private readonly key: SigningKey,
  ) {}

  static async open(f: BucketForm): Promise<Bucket> {
    let endpoint: URL;
    try {
      endpoint = new URL(f.endpoint);
    } catch {
      throw new BucketError(`the endpoint "${f.endpoint}" is not a URL (e.g. https://s3.eu-central-1.amazonaws.com)`);
    }
    if (endpoint.protocol !== "https:" && endpoint.protocol !== "http:") throw new BucketError("the endpoint must be an https:// (or http://) URL");
    if (endpoint.search || endpoint.hash || endpoint.username) throw new BucketError("the endpoint must be a plain URL, without query, fragment or user");
    if (!BUCKET_NAME.test(f.bucket)) throw new BucketError(`"${f.bucket}" is not an S3 bucket name`);
    if (!/^[a-z0-9-]{1,32}$/.test(f.region)) throw new BucketError(`"${f.region}" is not a region name (e.g. us-east-1)`);
    if (!/^[\x21-\x7e]{1,128}$/.test(f.accessKeyId) || f.accessKeyId.includes("/")) throw new BucketError("the access key id is missing or malformed");
    if (f.secret.length === 0) throw new BucketError("the secret access key is missing");
    const secretKey = await importSecret(f.secret);
    return new Bucket(endpoint, f.bucket, { accessKeyId: f.accessKeyId, region: f.region, secretKey });
  }

  /** The object `key` path-style: endpoint/bucket/key, each path segment encoded. */
  url(key: string): string {
    const base = this.endpoint.href.replace(/\/+$/, "");
    return `${base}/${this.name}/${key.split("/").map(encodeURIComponent).join("/")}`;
  }

  /**
   * `url`, an object URL under `within` (a folder's `url`), signed for one GET, valid for ten
   * minutes. Anything else is refused: a playlist naming another host or folder gets no
   * signature from this page.
   */
  presign(url: string, within: string): Promise<string> {
    const plain = new URL(url);
    plain.search = "";
    plain.hash = "";
    if (!plain.href.startsWith(within)) {
      return Promise.reject(new BucketError(`${plain.href} is outside ${within}: not signed`));
    }
    return presignGet(plain.href, this.key, new Date(), PRESIGN_SECONDS);
  }

  /**
   * The folder (key prefix ending in `/`) of the recording whose playlist or manifest is at
   * `location`, the device's URL of it (`endpoint/bucket/key`, path-style). Only the key is
   * taken from it: the page reads through its own endpoint. Throws on anything else.
   */
  folderOf(location: string): string {
    let u: URL;
    try {
      u = new URL(location);
    } catch {
      throw new BucketError("the recording's location is not a URL");
    }
    const parts = u.pathname.split("/").slice(1).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return "";
      }
    });
    if (parts[0] === this.name) parts.shift();
    parts.pop();
    if (parts.length === 0 || parts.some((p) => p === "" || p === "." || p === ".." || p.includes("/"))) {
      throw new BucketError(`the recording's location ${location} names no folder in bucket ${this.name}`);
    }
    return `${parts.join("/")}/`;
  }

  /** The bytes of object `key` (at most `limit`), with a sentence for every way it fails. */
  async get(key: string, limit: number): Promise<Uint8Array> {
    const url = await this.presign(this.url(key), this.url(key));
    let res: Response;
    try {
      res = await fetch(url, { credentials: "omit", cache: "no-store" });
    } catch {
      throw new BucketError(`no readable answer from ${this.endpoint.origin}: the store is unreachable, or its CORS rules do not let this page's origin (${location.origin}) read (docs/console.md)`);
    }
    if (!res.ok) throw new BucketError(`${key}: ${await describeFailure(res)}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length > limit) throw new BucketError(`${key} is ${bytes.length} bytes, more than the ${limit} expected`);
    return bytes;
  }
}

/** An S3 error answer as a sentence: its status, its `Code`, and what to check. */
export async function describeFailure(res: Response): Promise<string> {
  const body = await res.text().catch(() => "");
  return failureText(res.status, /<Code>([A-Za-z]{1,64})<\/Code>/.exec(body)?.[1]);
}

export function failureText(status: number, code: string | undefined): string {
  const hint: Record<string, string> = {
    SignatureDoesNotMatch: "check the secret access key",
    InvalidAccessKeyId: "check the access key id",
    AccessDenied: "the key may not read this bucket, or this computer's clock is off",
    RequestTimeTooSkewed: "this computer's clock is off: set it right",
    NoSuchBucket: "check the bucket name and endpoint",
    NoSuchKey: "the object is not there (deleted, or not uploaded yet)",
  };
  const c = code ?? "";
  return `the store answered ${status}${c ? ` ${c}` : ""}${hint[c] ? `: ${hint[c]}` : ""}`;
}
