// src/presign.ts against AWS's own example of a presigned URL (the "Example" section of
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html), run in Node's
// WebCrypto. The TypeScript module is stripped of its types by Vite's transformer (it has no
// imports), so the test runs the very source the page is built from.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { transformWithOxc } from "vite";
import { consoleDir } from "./harness.mjs";

async function loadPresign() {
  const file = path.join(consoleDir, "src/presign.ts");
  const { code } = await transformWithOxc(readFileSync(file, "utf8"), file, { lang: "ts" });
  const dir = mkdtempSync(path.join(tmpdir(), "presign-"));
  try {
    writeFileSync(path.join(dir, "presign.mjs"), code);
    return await import(path.join(dir, "presign.mjs"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("presigns AWS's example GET to the published signature", async () => {
  const p = await loadPresign();
  const key = {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    region: "us-east-1",
    secretKey: await p.importSecret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
  };
  const url = await p.presignGet("https://examplebucket.s3.amazonaws.com/test.txt", key, new Date("2013-05-24T00:00:00Z"), 86400);
  assert.equal(url,
    "https://examplebucket.s3.amazonaws.com/test.txt" +
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  // A wrong secret gives another signature (the vector is not matched by accident).
  const other = await p.presignGet("https://examplebucket.s3.amazonaws.com/test.txt",
    { ...key, secretKey: await p.importSecret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEz") }, new Date("2013-05-24T00:00:00Z"), 86400);
  assert.notEqual(other, url);
});

test("encodes keys the SigV4 way", async () => {
  const p = await loadPresign();
  assert.equal(p.uriEncode("a b/ü~*"), "a%20b%2F%C3%BC~%2A");
  assert.equal(p.amzDate(new Date("2026-12-06T18:30:03.123Z")), "20261206T183003Z");
});
