// Signs admin commands as docs/api.md "Signed commands" says, with WebCrypto Ed25519. Owns the
// admin key: it is imported non-extractable from the file the admin picks and never stored,
// logged or sent; the seed bytes are zeroed once imported. Must not touch MQTT or the page.

/** PKCS#8 DER of an Ed25519 private key, up to the 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

export class KeyFileError extends Error {}

/** Standard base64 with padding, strictly: what `roomrecctl key gen` writes. */
function decodeBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new KeyFileError("the key file is not standard base64; use the file `roomrecctl key gen --out FILE` wrote");
  }
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * Imports the private key from the text of a key file: as `roomrecctl` reads it, the first
 * line that is neither empty nor a `#` comment, a 32-byte seed in base64.
 */
export async function importKeyFile(fileText: string): Promise<CryptoKey> {
  const line = fileText.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== "" && !l.startsWith("#"));
  if (line === undefined) throw new KeyFileError("the key file holds no key");
  const seed = decodeBase64(line);
  if (seed.length !== 32) {
    seed.fill(0);
    throw new KeyFileError(`the key file holds ${seed.length} bytes, not a 32-byte Ed25519 key`);
  }
  const der = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  der.set(PKCS8_ED25519_PREFIX);
  der.set(seed, PKCS8_ED25519_PREFIX.length);
  seed.fill(0);
  try {
    return await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  } catch (e) {
    throw new KeyFileError(`this browser could not import an Ed25519 key (${String(e)}); use a current Chromium or Firefox`);
  } finally {
    der.fill(0);
  }
}

/** 16 random bytes in unpadded base64url: 22 characters, as `roomrecctl` sends. */
export function freshNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Now, as RFC 3339 in whole seconds. */
export function signedAtNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The detached signature of `payload` published on `topic`, in standard base64. */
export async function signPayload(key: CryptoKey, topic: string, payload: string): Promise<string> {
  const message = new TextEncoder().encode(`roomrec-sig-v1\n${topic}\n${payload}`);
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, message);
  return encodeBase64(new Uint8Array(sig));
}
