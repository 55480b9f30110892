// Reference ids (and decodes) from the npm package @huggingface/tokenizers, one node process for a corpus.
//
// usage: node hf_tokenizers_ref.js NODE_MODULES_DIR MODE TOKENIZER_DIR FILE.jsonl...
//   MODE ids:     the ids of each document's "text" without special tokens, one line each
//        special: with the tokenizer's special tokens (add_special_tokens = true)
//        decode:   hex of the UTF-8 bytes of decode(encode(text)) (clean_up_tokenization_spaces off)
// TOKENIZER_DIR holds tokenizer.json and, if it has one, tokenizer_config.json.
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, mode, dir, ...files] = process.argv.slice(2);
let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(path.resolve(modules), '@huggingface/tokenizers/dist/tokenizers.cjs')));
} catch (e) {
  console.error(`SKIP: npm package @huggingface/tokenizers not found under ${modules}: ${e.message}`);
  process.exit(77);
}
const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const configPath = path.join(dir, 'tokenizer_config.json');
const config = fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : {};
const tok = new Tokenizer(json, config);

const out = [];
for (const file of files) {
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const text = JSON.parse(line).text;
    const ids = tok.encode(text, { add_special_tokens: mode === 'special' }).ids;
    if (mode === 'decode') {
      const back = ids.length ? tok.decode(ids, { clean_up_tokenization_spaces: false }) : '';
      out.push(Buffer.from(back, 'utf8').toString('hex'));
    } else {
      out.push(ids.join(' '));
    }
  }
}
fs.writeSync(1, out.join('\n') + (out.length ? '\n' : ''));
