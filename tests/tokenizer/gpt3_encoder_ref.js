// Reference ids from the npm package gpt-3-encoder, one node process for every document.
//
// usage: node gpt3_encoder_ref.js NODE_MODULES_DIR MODEL_DIR FILE.jsonl...
// Prints the ids of each document's "text", one line each. Exits 77 when the package is missing and
// 1 when the package's own vocabulary is not MODEL_DIR's (the comparison would then be meaningless).
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, modelDir, ...files] = process.argv.slice(2);
let encoder;
try {
  encoder = require(path.join(path.resolve(modules), 'gpt-3-encoder'));
} catch (e) {
  console.error(`SKIP: npm package gpt-3-encoder not found under ${modules}: ${e.message}`);
  process.exit(77);
}

const pkgDir = path.join(path.resolve(modules), 'gpt-3-encoder');
const theirs = JSON.parse(fs.readFileSync(path.join(pkgDir, 'encoder.json'), 'utf8'));
const ours = JSON.parse(fs.readFileSync(path.join(modelDir, 'vocab.json'), 'utf8'));
const theirKeys = Object.keys(theirs);
if (theirKeys.length !== Object.keys(ours).length || theirKeys.some((k) => ours[k] !== theirs[k])) {
  console.error(`gpt-3-encoder's encoder.json differs from ${modelDir}/vocab.json`);
  process.exit(1);
}
const theirMerges = fs.readFileSync(path.join(pkgDir, 'vocab.bpe'), 'utf8').trim().split('\n');
const ourMerges = fs.readFileSync(path.join(modelDir, 'merges.txt'), 'utf8').trim().split('\n');
if (theirMerges.length !== ourMerges.length || theirMerges.some((l, i) => l.trim() !== ourMerges[i].trim())) {
  console.error(`gpt-3-encoder's vocab.bpe differs from ${modelDir}/merges.txt`);
  process.exit(1);
}

const out = [];
for (const file of files) {
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    // An id the package cannot map (its merge table mis-keys a few pairs) prints as "undefined".
    out.push(encoder.encode(JSON.parse(line).text).map(String).join(' '));
  }
}
fs.writeSync(1, out.join('\n') + (out.length ? '\n' : ''));
