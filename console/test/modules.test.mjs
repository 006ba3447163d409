// The page's modules that need no page, in Node: src/presign.ts against AWS's own example of
// a presigned URL (the "Example" section of
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html) in Node's
// WebCrypto; the manifest reader (src/parse.ts) and the bucket's object names (src/bucket.ts).
// The TypeScript sources are stripped of their types by Vite's transformer, so the test runs
// the very source the page is built from.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { transformWithOxc } from "vite";
import { consoleDir } from "./harness.mjs";

/** Modules `names` of src/, as JavaScript in a temporary folder; returns the last one. */
async function load(...names) {
  const dir = mkdtempSync(path.join(tmpdir(), "console-modules-"));
  try {
    for (const name of names) {
      const file = path.join(consoleDir, `src/${name}.ts`);
      const { code } = await transformWithOxc(readFileSync(file, "utf8"), file, { lang: "ts" });
      writeFileSync(path.join(dir, `${name}.mjs`), code.replace(/from "\.\/(\w+)"/g, 'from "./$1.mjs"'));
    }
    return await import(path.join(dir, `${names.at(-1)}.mjs`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const loadPresign = () => load("presign");

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

const bytes = (v) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

test("reads a manifest, its completeness report if any, and refuses a playlist outside its folder", async () => {
  const { parseManifest } = await load("parse");
  const base = {
    version: 1, recording_id: "r-1", meeting_id: "m-1", creator: "u-1", started_by: "u-2",
    created_at: "2026-12-06T18:36:20.043Z", duration_ms: 33000, recorded_ms: 33109, bytes: 1248132,
    shared: false, playlist: "index.m3u8", pauses: [{ after_seq: 3, before_seq: 5 }],
    segments: [{ seq: 1, name: "00000001.ts", duration_ms: 1000 }, { seq: 2, name: "00000002.ts", duration_ms: 1500 }],
  };
  const m = parseManifest(bytes(base));
  assert.equal(m.playlist, "index.m3u8");
  assert.equal(m.segments, 2);
  assert.equal(m.segmentsMs, 2500);
  assert.equal(m.pauses, 1);
  assert.equal(m.completeness, undefined);
  // With the transcript, the master playlist is the one to play.
  assert.equal(parseManifest(bytes({ ...base, master_playlist: "master.m3u8" })).playlist, "master.m3u8");
  const report = { recorded_ms: 33000, gaps: [{ cause: "camera_lost", duration_ms: 2000 }] };
  assert.deepEqual(parseManifest(bytes({ ...base, completeness: report })).completeness, report);
  for (const [bad, why] of [
    [{ ...base, playlist: "../other/index.m3u8" }, /no playlist file/],
    [{ ...base, playlist: ".hidden" }, /no playlist file/],
    [{ ...base, playlist: undefined }, /no playlist file/],
    [{ ...base, segments: {} }, /'segments' is not a list/],
    [[base], /not a JSON object/],
  ]) assert.match(parseManifest(bytes(bad)).garbage, why, JSON.stringify(bad));
  assert.match(parseManifest(new Uint8Array([0xff, 0x7b])).garbage, /not UTF-8 JSON/);
});

test("takes only the recording's folder from a device's location, and checks the credentials' form", async () => {
  const { Bucket, BucketError, failureText } = await load("presign", "bucket");
  const form = { endpoint: "https://s3.example.net", bucket: "recordings", region: "eu-central-1", accessKeyId: "AKIA1", secret: "s" };
  const b = await Bucket.open(form);
  assert.equal(b.folderOf("http://10.0.0.5:9000/recordings/u-1/m-1/r-1/index.m3u8"), "u-1/m-1/r-1/");
  assert.equal(b.folderOf("https://s3.example.net/recordings/site-a/u-1/m-1/r-1/manifest.json"), "site-a/u-1/m-1/r-1/");
  assert.equal(b.url("u-1/m 1/r-1/index.m3u8"), "https://s3.example.net/recordings/u-1/m%201/r-1/index.m3u8");
  for (const bad of ["not a url", "https://s3.example.net/recordings/index.m3u8", "https://h/recordings/a%2F..%2Fb/index.m3u8", "https://h/recordings/a//index.m3u8"]) {
    assert.throws(() => b.folderOf(bad), BucketError, bad);
  }
  for (const [change, why] of [
    [{ endpoint: "ftp://x" }, /https:\/\//], [{ endpoint: "https://x/?a=1" }, /plain URL/], [{ bucket: "Bad_Name" }, /bucket name/],
    [{ region: "EU 1" }, /region/], [{ accessKeyId: "" }, /access key id/], [{ secret: "" }, /secret/],
  ]) await assert.rejects(Bucket.open({ ...form, ...change }), why);
  // Presigned for this bucket's host, whatever query the URL had; nothing outside the folder.
  const folder = b.url("u-1/m-1/r-1/");
  const signed = new URL(await b.presign(`${b.url("u-1/m-1/r-1/00000001.ts")}?X-Amz-Signature=old`, folder));
  for (const outside of ["https://evil.example/recordings/u-1/m-1/r-1/1.ts", b.url("u-1/m-1/r-2/00000001.ts"), "https://s3.example.net/recordings/u-1/m-1/r-1/../r-2/1.ts"]) {
    await assert.rejects(b.presign(outside, folder), /outside .*: not signed/, outside);
  }
  assert.equal(signed.host, "s3.example.net");
  assert.equal(signed.searchParams.getAll("X-Amz-Signature").length, 1);
  assert.match(signed.searchParams.get("X-Amz-Credential"), /^AKIA1\/\d{8}\/eu-central-1\/s3\/aws4_request$/);
  assert.equal(failureText(403, "SignatureDoesNotMatch"), "the store answered 403 SignatureDoesNotMatch: check the secret access key");
});
