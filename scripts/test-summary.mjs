// Adds up the vitest JSON reports of every package and prints one closing line that CI can read
// ("N passed, N failed"). Exits non-zero when a package has no report or any test failed.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const pkg of readdirSync('packages')) {
  if (!existsSync(join('packages', pkg, 'package.json'))) continue;
  const report = join('packages', pkg, '.test-results.json');
  if (!existsSync(report)) {
    missing.push(pkg);
    continue;
  }
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
  console.log(`${pkg.padEnd(12)} ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
}
if (missing.length) console.log(`no test report from: ${missing.join(', ')}`);
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed || missing.length || passed === 0 ? 1 : 0);
