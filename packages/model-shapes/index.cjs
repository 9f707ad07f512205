'use strict';
const path = require('node:path');

/** The model's folder (Hugging Face layout), for `LlavaMini.fromPretrained` or `--model`. */
exports.modelDir = path.join(__dirname, 'model');
