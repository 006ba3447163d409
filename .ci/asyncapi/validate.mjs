// Validates an AsyncAPI document (docs/asyncapi.yaml) for CI.
//
//   node validate.mjs FILE
//
// 1. Parses FILE with @asyncapi/parser (spec schema + its Spectral rulesets) and prints every
//    diagnostic: severity error as ERROR, warning as WARNING (information and hints as INFO).
// 2. Checks every message example against its message's payload schema (JSON Schema,
//    draft-07 via Ajv), and each server's MQTT last will against the status channel's
//    messages: the AsyncAPI 3 ruleset does not check examples itself.
// Exits 1 if there was any error, 0 otherwise (warnings do not fail the check).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const MAX_ERRORS_PER_EXAMPLE = 8;
const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}
const path = resolve(file);

let errors = 0;
let warnings = 0;
const error = (msg) => {
  errors += 1;
  console.error(`ERROR   ${msg}`);
};
const warning = (msg) => {
  warnings += 1;
  console.warn(`WARNING ${msg}`);
};

function where(d) {
  const at = d.range?.start ? `:${d.range.start.line + 1}:${d.range.start.character + 1}` : '';
  const p = d.path?.length ? ` at ${d.path.join('.')}` : '';
  return `${file}${at}${p}`;
}

const source = await readFile(path, 'utf8');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(source, { source: path });

for (const d of diagnostics) {
  const line = `${where(d)}: [${d.code}] ${d.message}`;
  if (d.severity === DiagnosticSeverity.Error) error(line);
  else if (d.severity === DiagnosticSeverity.Warning) warning(line);
  else console.log(`INFO    ${line}`);
}

if (document) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const compiled = new Map();
  const validatorFor = (message) => {
    const payload = message.payload();
    if (!payload) return undefined;
    const key = `${message.id()}`;
    if (!compiled.has(key)) {
      compiled.set(key, ajv.compile(structuredClone(payload.json())));
    }
    return compiled.get(key);
  };

  let checked = 0;
  for (const message of document.allMessages()) {
    const validate = validatorFor(message);
    for (const [i, example] of message.examples().all().entries()) {
      const name = example.name() ?? `#${i}`;
      if (!example.hasPayload()) continue;
      if (!validate) {
        error(`message ${message.id()}: example ${name} has a payload but the message has none`);
        continue;
      }
      checked += 1;
      if (!validate(example.payload())) {
        // A failing oneOf reports every branch; the first few errors name the problem.
        const shown = validate.errors.slice(0, MAX_ERRORS_PER_EXAMPLE);
        const more = validate.errors.length - shown.length;
        if (more > 0) errors += more;
        for (const e of shown) {
          error(
            `message ${message.id()}: example ${name}: ${e.instancePath || '/'} ${e.message}` +
              ` (${e.schemaPath} ${JSON.stringify(e.params)})`,
          );
        }
        if (more > 0) console.error(`        ... and ${more} more error(s) for this example`);
      }
    }
  }

  // The MQTT last will of each server must be valid JSON that one of the status channel's
  // messages accepts.
  const status = document.channels().all().find((c) => c.id() === 'status');
  for (const server of document.servers().all()) {
    const binding = server.bindings().all().find((b) => b.protocol() === 'mqtt');
    const will = binding?.value()?.lastWill;
    if (!will) continue;
    let payload;
    try {
      payload = JSON.parse(will.message);
    } catch (e) {
      error(`server ${server.id()}: lastWill.message is not JSON (${e.message})`);
      continue;
    }
    checked += 1;
    const ok = (status?.messages().all() ?? []).some((m) => validatorFor(m)?.(payload));
    if (!ok) error(`server ${server.id()}: lastWill.message matches no message of channel status`);
  }
  console.log(`checked ${checked} example payloads against their schemas`);
} else if (errors === 0) {
  error('the parser returned no document');
}

console.log(
  `${path}: ${errors} error(s), ${warnings} warning(s)${errors ? '' : ': valid AsyncAPI document'}`,
);
process.exit(errors ? 1 : 0);
