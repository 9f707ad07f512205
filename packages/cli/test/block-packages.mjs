// `node --import ./block-packages.mjs`: packages named in LLAVA_MINI_BLOCK (comma-separated) cannot
// be resolved, as if they were not installed. Lets tests check what a missing optional peer says.
import { register } from 'node:module';

const hooks = `
const blocked = new Set((process.env.LLAVA_MINI_BLOCK ?? '').split(',').filter(Boolean));
export async function resolve(specifier, context, next) {
  if (blocked.has(specifier)) {
    const err = new Error("Cannot find package '" + specifier + "' (blocked for a test)");
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
