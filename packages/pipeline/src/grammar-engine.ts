// The grammar engine of structured output, for browsers: this package's build bundles
// @mlc-ai/web-xgrammar into this module's chunk (see tsup.config.ts), so an app's bundler meets
// plain browser code, and the web entry imports it lazily on the first structured answer.
import * as xgrammar from '@mlc-ai/web-xgrammar';

export default xgrammar;
