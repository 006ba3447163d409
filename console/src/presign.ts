// AWS Signature Version 4 query-string presigning of GET requests, with WebCrypto's
// HMAC-SHA256 (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html).
// Owns the canonical request, the string to sign and the signing-key chain; must not know
// buckets, the page or the network. Self-contained (no imports), so its test can run it in
// Node against AWS's published example.

/** The bucket's read credentials, as the page keeps them. */
export interface SigningKey {
  accessKeyId: string;
  region: string;
  /** HMAC-SHA256 key of "AWS4" + the secret access key, imported non-extractable. */
  secretKey: CryptoKey;
}

const encoder = new TextEncoder();

/** Imports "AWS4" + `secret` as a non-extractable HMAC key: the secret's only form kept. */
export async function importSecret(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(`AWS4${secret}`), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

async function hmac(key: CryptoKey | ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const k = key instanceof ArrayBuffer
    ? await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
    : key;
  return crypto.subtle.sign("HMAC", k, encoder.encode(data));
}

function hex(b: ArrayBuffer): string {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** SigV4's URI encoding: every byte but A–Z a–z 0–9 - _ . ~ as %XX (upper case). */
export function uriEncode(s: string): string {
  return Array.from(encoder.encode(s), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
}

/** `20130524T000000Z` for a Date. */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * The URL of a GET of `url` signed in its query string, valid `expiresS` seconds from `now`.
 * Only the `host` header is signed (the browser sends no other that S3 checks); the payload
 * is UNSIGNED-PAYLOAD, as for every presigned URL.
 */
export async function presignGet(url: string, key: SigningKey, now: Date, expiresS: number): Promise<string> {
  const u = new URL(url);
  const date = amzDate(now);
  const day = date.slice(0, 8);
  const scope = `${day}/${key.region}/s3/aws4_request`;
  const query: [string, string][] = [...u.searchParams.entries()];
  query.push(
    ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"],
    ["X-Amz-Credential", `${key.accessKeyId}/${scope}`],
    ["X-Amz-Date", date],
    ["X-Amz-Expires", String(expiresS)],
    ["X-Amz-SignedHeaders", "host"],
  );
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  // The path as S3 sees it: each segment decoded, then encoded the SigV4 way.
  const canonicalPath = u.pathname.split("/").map((s) => uriEncode(decodeURIComponent(s))).join("/");
  const canonicalRequest = ["GET", canonicalPath, canonicalQuery, `host:${u.host}`, "", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, hex(await crypto.subtle.digest("SHA-256", encoder.encode(canonicalRequest)))].join("\n");
  let signing = await hmac(key.secretKey, day);
  for (const part of [key.region, "s3", "aws4_request"]) signing = await hmac(signing, part);
  const signature = hex(await hmac(signing, stringToSign));
  return `${u.origin}${canonicalPath}?${canonicalQuery}&X-Amz-Signature=${signature}`;
}
