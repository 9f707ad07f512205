// `llava-mini serve`: the flags (so `--help` works without the server installed); what they start is
// ./serve-run.ts over @llava-mini/server, imported only when the command runs.
import { type Command, Option } from 'commander';
import { deviceOption } from './flags.js';
import { loadOptional } from './optional.js';

const collect = (v: string, all: string[] = []) => [...all, v];

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('an OpenAI-compatible HTTP server (POST /v1/chat/completions, /v1/models, /health, /metrics)')
    .option('--model <dir>', 'a converted model folder, or a small Hugging Face checkpoint (converted in memory); default: the demo model')
    .option('--model-id <id>', "the id clients pass as 'model' (default: the folder's name)")
    .option('--host <addr>', 'address to listen on (0.0.0.0 for every interface: put it behind a proxy with TLS)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', '8080')
    .option('--workers <n>', 'workers, each with a loaded model', '1')
    .addOption(new Option('--isolation <kind>', "what each worker runs in: 'process' survives a worker's crash in native code or the OOM killer (a Node process per worker)").choices(['thread', 'process']).default('thread'))
    .option('--parallel <n>', 'requests each worker runs at once (their decode steps batched)', '1')
    .addOption(deviceOption('where the workers run', 'cpu'))
    .option('--queue <n>', 'requests waiting for a worker before 429', '16')
    .option('--api-key <key>', 'require Authorization: Bearer KEY on /v1 and /metrics (or LLAVA_MINI_API_KEY)')
    .option('--body-limit <bytes>', 'largest request body (default 20971520)')
    .option('--max-images <n>', 'most pictures per request (default 8)')
    .option('--max-image-pixels <n>', 'most pixels per image, read from its header (default 16777216)')
    .option('--max-frames <n>', 'most frames sampled from a video (default 64)')
    .option('--max-tokens <n>', 'tokens generated when a request sets no max_tokens (default 512)')
    .option('--allow-remote-media <host>', 'fetch https image/video URLs from this host (repeat, or a,b; *.example.com for subdomains)', collect)
    .option('--allow-media-address <cidr>', 'a private address remote media may resolve to (repeat)', collect)
    .option('--remote-media-ca <file>', 'extra CA certificates (PEM) for remote media')
    .option('--allowed-media-path <dir>', 'local image/video paths may be under this folder (repeat)', collect)
    .option('--cors <origin>', "allow this browser origin ('*' for any; repeat)", collect)
    .option('--drain-timeout <s>', 'on SIGTERM, how long running requests may take to finish (default 30)')
    .option('--headers-timeout <s>', 'most seconds a client may take to send its headers (default 15)')
    .option('--request-timeout <s>', 'most seconds a client may take to send its whole request (default 60)')
    .option('--keep-alive-timeout <s>', 'seconds an idle keep-alive connection stays open (default 5)')
    .option('--max-connections <n>', 'most open connections; later ones are closed as they arrive (default 1024)')
    .action(async (flags) => (await loadOptional('@llava-mini/server', 'serve', () => import('./serve-run.js'))).serveCommand(flags));
}
