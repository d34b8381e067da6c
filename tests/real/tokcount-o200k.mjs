#!/usr/bin/env node
// tokcount-o200k.mjs — count o200k_base (GPT-4o family) tokens of files, offline.
//
// Usage: node tokcount-o200k.mjs FILE...
// Prints one line per file: <path>\t<unicode code points>\t<o200k tokens>
//
// Uses the npm package gpt-tokenizer (pure JS, ships the o200k_base ranks; no network at run time),
// resolved from $AR_TOK_NPM_DIR (default ${AR_CACHE_DIR:-$HOME/.cache/agentreplay}/npm-tok),
// where tokcount.sh installs it.  Special-token strings such as "<|endoftext|>" in the text are
// counted as ordinary text (content only, like llama-tokenize without special parsing).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';

const cacheDir = process.env.AR_CACHE_DIR || join(homedir(), '.cache', 'agentreplay');
const npmDir = process.env.AR_TOK_NPM_DIR || join(cacheDir, 'npm-tok');
const require = createRequire(join(npmDir, 'package.json'));

let enc;
try {
  enc = require('gpt-tokenizer/encoding/o200k_base');
} catch (e) {
  process.stderr.write(`tokcount-o200k: cannot load gpt-tokenizer from ${npmDir}: ${e.message}\n` +
    `  install it with: (cd ${npmDir} && npm i -E gpt-tokenizer@4.0.0)\n`);
  process.exit(1);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: tokcount-o200k.mjs FILE...\n');
  process.exit(2);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const opts = { disallowedSpecial: new Set() };
let rc = 0;
for (const f of files) {
  let text;
  try {
    text = decoder.decode(readFileSync(f));
  } catch (e) {
    process.stderr.write(`tokcount-o200k: ${f}: ${e.message}\n`);
    rc = 1;
    continue;
  }
  let chars = 0;
  for (const _ of text) chars++;
  const n = enc.encode(text, opts).length;
  process.stdout.write(`${f}\t${chars}\t${n}\n`);
}
process.exit(rc);
